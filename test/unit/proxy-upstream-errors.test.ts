import { describe, expect, it } from 'vitest';
import { renderErrorPage, escapeHtml, wantsHtml } from '../../proxy/error-pages.js';
import { mapUpstreamError } from '../../proxy/upstream-errors.js';
import { local, remote, route } from '../helpers/routes.js';

const localTarget = local(5173);
const localRoute = route('api.feature-x.localhost', localTarget);
const remoteTarget = remote({ origin: 'https://contoso-api-dev.azurecontainerapps.io', hostname: 'contoso-api-dev.azurecontainerapps.io' });
const remoteRoute = route('api.feature-x.localhost', remoteTarget);

function errorWith(code: string, message = 'boom'): Error {
  return Object.assign(new Error(message), { code });
}

describe('mapUpstreamError', () => {
  it('names service, worktree, target and the `devproxy use` fix for a refused local target', () => {
    expect(mapUpstreamError(errorWith('ECONNREFUSED'), { route: localRoute, target: localTarget, profile: 'minimal' })).toEqual({
      status: 502,
      code: 'DEVPROXY_ERR_UPSTREAM_REFUSED',
      message: 'Nothing is listening on 127.0.0.1:5173: is `api` of worktree `feature-x` running?',
      hint: 'start it, or route it to its remote: `devproxy use minimal --service api=remote`',
      service: 'api',
      worktree: 'feature-x',
      target: '127.0.0.1:5173',
    });
  });

  it('uses a <profile> placeholder when the profile is unknown', () => {
    expect(mapUpstreamError(errorWith('ECONNREFUSED'), { route: localRoute, target: localTarget })?.hint).toContain(
      '`devproxy use <profile> --service api=remote`',
    );
  });

  it.each(['ENOTFOUND', 'EAI_AGAIN'])('names the remote host on DNS failure %s', (code) => {
    const info = mapUpstreamError(errorWith(code), { route: remoteRoute, target: remoteTarget });
    expect(info?.status).toBe(502);
    expect(info?.code).toBe('DEVPROXY_ERR_UPSTREAM_DNS');
    expect(info?.message).toContain('contoso-api-dev.azurecontainerapps.io');
    expect(info?.message).toContain(code);
  });

  it.each([
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'not signed by a CA devproxy trusts'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed'],
    ['CERT_HAS_EXPIRED', 'expired'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'does not cover the remote hostname'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'TLS connection failed'],
  ])('names the remote and explains TLS error %s', (code, meaning) => {
    const info = mapUpstreamError(errorWith(code), { route: remoteRoute, target: remoteTarget });
    expect(info?.status).toBe(502);
    expect(info?.code).toBe('DEVPROXY_ERR_UPSTREAM_TLS');
    expect(info?.message).toContain('contoso-api-dev.azurecontainerapps.io');
    expect(info?.message).toContain(code);
    expect(info?.message).toContain(meaning);
  });

  it.each(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'])('maps %s to 504', (code) => {
    const info = mapUpstreamError(errorWith(code), { route: remoteRoute, target: remoteTarget });
    expect(info?.status).toBe(504);
    expect(info?.code).toBe('DEVPROXY_ERR_UPSTREAM_TIMEOUT');
  });

  it('reads the code from the cause chain', () => {
    const wrapped = Object.assign(new Error('fetch failed'), { code: 'UND_ERR_SOCKET', cause: errorWith('ECONNREFUSED') });
    expect(mapUpstreamError(wrapped, { route: localRoute, target: localTarget })?.code).toBe('DEVPROXY_ERR_UPSTREAM_REFUSED');
  });

  it('returns null when the client aborted, so nothing is written', () => {
    expect(mapUpstreamError(errorWith('UND_ERR_ABORTED'), { route: localRoute, target: localTarget })).toBeNull();
    expect(mapUpstreamError(errorWith('DEVPROXY_CLIENT_ABORTED'), { route: localRoute, target: localTarget })).toBeNull();
  });

  it('falls back to a 502 naming the target for anything else', () => {
    const info = mapUpstreamError(new Error('weird'), { route: remoteRoute, target: remoteTarget });
    expect(info).toMatchObject({ status: 502, code: 'DEVPROXY_ERR_UPSTREAM_FAILED', target: 'https://contoso-api-dev.azurecontainerapps.io' });
  });
});

describe('error pages', () => {
  const info = mapUpstreamError(errorWith('ECONNREFUSED'), {
    route: route('<img src=x>.feature-x.localhost', localTarget),
    target: localTarget,
  });

  it('escapes everything interpolated into HTML', () => {
    const html = renderErrorPage(info!, true);
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;img src=x&gt;');
    expect(escapeHtml(`<a href="x" onclick='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });

  it('renders JSON as { error: { code, message, hint, service, worktree, target } }', () => {
    const json = JSON.parse(renderErrorPage(info!, false));
    expect(Object.keys(json.error)).toEqual(['code', 'message', 'hint', 'service', 'worktree', 'target']);
  });

  it('chooses HTML only when Accept includes text/html', () => {
    expect(wantsHtml('text/html,application/xhtml+xml')).toBe(true);
    expect(wantsHtml('application/json')).toBe(false);
    expect(wantsHtml('*/*')).toBe(false);
    expect(wantsHtml(undefined)).toBe(false);
  });
});
