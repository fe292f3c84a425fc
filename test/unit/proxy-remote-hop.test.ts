import { CredentialUnavailableError, type AccessToken, type TokenCredential } from '@azure/identity';
import { describe, expect, it } from 'vitest';
import { AzureTokenCache, AzureTokenError, TOKEN_REFRESH_MARGIN_MS } from '../../proxy/azure-token.js';
import { renderWakingPage } from '../../proxy/error-pages.js';
import { buildUpstreamHeaders } from '../../proxy/forward-headers.js';
import { parseRequestRule, type RequestRule } from '../../profiles/request-rules.js';
import {
  HopRefusal,
  hopFailure,
  isRetriedMethod,
  isSafeMethod,
  isWakingStatus,
  mayRetryWake,
  refusedWrite,
  wakeDelayMs,
  wakeErrorCode,
  wakePlanFor,
} from '../../proxy/remote-hop.js';
import type { ProxyErrorInfo } from '../../proxy/upstream-errors.js';
import type { RemoteTarget } from '../../proxy/upstream-pools.js';
import { remote, route } from '../helpers/routes.js';
import { rewriteSetCookie, rewriteSiblingLocation, type SiblingRemote } from '../../proxy/response-rewrite.js';

const SIBLINGS: SiblingRemote[] = [
  { host: 'api.x.localhost', hostname: 'contoso-api-dev.azurewebsites.net', authority: 'contoso-api-dev.azurewebsites.net', basePath: '/v1' },
  { host: 'login.x.localhost', hostname: 'login.contoso-dev.example', authority: 'login.contoso-dev.example:8443', basePath: '' },
];

describe('rewriteSiblingLocation', () => {
  it.each([
    ['https://contoso-api-dev.azurewebsites.net/v1/me?x=1#h', 'http://api.x.localhost:8080/me?x=1#h'],
    ['http://contoso-api-dev.azurewebsites.net/v1', 'http://api.x.localhost:8080/'],
    ['https://login.contoso-dev.example:8443/authorize?redirect_uri=y', 'http://login.x.localhost:8080/authorize?redirect_uri=y'],
    ['//login.contoso-dev.example:8443/a', 'http://login.x.localhost:8080/a'],
    // The identity host on another port, a foreign host and relative Locations stay as they are.
    ['https://login.contoso-dev.example/authorize', 'https://login.contoso-dev.example/authorize'],
    ['https://login.microsoftonline.com/common', 'https://login.microsoftonline.com/common'],
    ['/relative', '/relative'],
  ])('%s → %s', (location, expected) => {
    expect(rewriteSiblingLocation(location, SIBLINGS, 'http', 8080)).toBe(expected);
  });

  it('keeps the scheme and port the client used', () => {
    expect(rewriteSiblingLocation('https://login.contoso-dev.example:8443/', SIBLINGS, 'https', 443)).toBe('https://login.x.localhost/');
  });
});

describe('rewriteSetCookie for the worktree remotes', () => {
  it('drops a Domain naming any remote of the worktree, and no other', () => {
    const api = SIBLINGS[0] as SiblingRemote;
    const others = SIBLINGS.map((s) => s.hostname);
    expect(rewriteSetCookie('a=1; Domain=.contoso-dev.example; Path=/v1/x', api, true, others)).toBe('a=1; Path=/x');
    expect(rewriteSetCookie('a=1; Domain=example.org', api, true, others)).toBe('a=1; Domain=example.org');
    expect(rewriteSetCookie('a=1; Secure; SameSite=None', api, false, others)).toBe('a=1');
    expect(rewriteSetCookie('a=1; Secure; SameSite=None', api, true, others)).toBe('a=1; Secure; SameSite=None');
  });
});

describe('methods', () => {
  it('lets only safe methods through read-only remotes and retries only GET/HEAD/OPTIONS', () => {
    expect(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'POST', 'PUT', 'PATCH', 'DELETE', 'PROPFIND'].filter(isSafeMethod)).toEqual(['GET', 'HEAD', 'OPTIONS', 'TRACE']);
    expect(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'POST'].filter(isRetriedMethod)).toEqual(['GET', 'HEAD', 'OPTIONS']);
  });
});

describe('buildUpstreamHeaders with remote hop headers', () => {
  it('sets the hop headers over client values of the same name', () => {
    const out = buildUpstreamHeaders(['X-Functions-Key', 'client', 'Authorization', 'Bearer client', 'Accept', '*/*', 'X-Original-Host', 'spoof'], {
      host: 'remote.example',
      forwardedFor: '127.0.0.1',
      forwardedHost: 'api.x.localhost:8080',
      forwardedProto: 'http',
      hops: 0,
      extra: ['x-original-host', 'api.x.localhost:8080', 'x-functions-key', 'secret', 'authorization', 'Bearer t'],
    });
    const values = (name: string) => out.filter((_v, i) => i % 2 === 0 && out[i]?.toLowerCase() === name).map((_v, i) => i);
    expect(values('x-functions-key')).toHaveLength(1);
    expect(out).toContain('secret');
    expect(out).not.toContain('client');
    expect(out).not.toContain('Bearer client');
    expect(out).not.toContain('spoof');
    expect(out).toContain('*/*');
  });
});

describe('renderWakingPage', () => {
  it('escapes what it shows and bounds its reloads by the timeout', () => {
    const page = renderWakingPage({ service: '<api>', worktree: 'x', target: 'https://a.example', answered: '503', timeoutMs: 90_000, retryAfterSeconds: 3 });
    expect(page).toContain('Waking &lt;api&gt;…');
    expect(page).not.toContain('<api>');
    expect(page).toContain('Date.now()-t<90000');
  });
});

/** A credential answering from a list of scripted outcomes, counting calls. */
class ScriptedCredential implements TokenCredential {
  calls = 0;
  constructor(private readonly outcomes: (AccessToken | Error)[]) {}
  async getToken(): Promise<AccessToken> {
    const outcome = this.outcomes[Math.min(this.calls++, this.outcomes.length - 1)] as AccessToken | Error;
    await new Promise((resolve) => setImmediate(resolve));
    if (outcome instanceof Error) throw outcome;
    return outcome;
  }
}

describe('AzureTokenCache', () => {
  const fresh = (token: string): AccessToken => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 });

  it('shares one fetch between concurrent callers and serves the cached token synchronously', async () => {
    const credential = new ScriptedCredential([fresh('t1')]);
    const cache = new AzureTokenCache(() => [{ name: 'Scripted', credential }]);
    const all = await Promise.all(Array.from({ length: 10 }, () => cache.token('s', undefined)));
    expect(new Set(all)).toEqual(new Set(['t1']));
    expect(cache.token('s', undefined)).toBe('t1');
    expect(credential.calls).toBe(1);
  });

  it('refreshes within the margin, and keeps serving an unexpired token when the refresh fails', async () => {
    const soon: AccessToken = { token: 'old', expiresOnTimestamp: Date.now() + TOKEN_REFRESH_MARGIN_MS / 2 };
    const credential = new ScriptedCredential([soon, new CredentialUnavailableError('signed out')]);
    const cache = new AzureTokenCache(() => [{ name: 'Scripted', credential }]);
    expect(await cache.token('s', undefined)).toBe('old');
    expect(await cache.token('s', undefined)).toBe('old');
    expect(credential.calls).toBe(2);
  });

  it('tries the next credential only when one is unavailable, and names every failure', async () => {
    const unavailable = new ScriptedCredential([new CredentialUnavailableError('not signed in. See https://aka.ms/x for more')]);
    const broken = new ScriptedCredential([Object.assign(new Error('AADSTS700016: application not found'), { name: 'AuthenticationError' })]);
    const never = new ScriptedCredential([fresh('never')]);
    const cache = new AzureTokenCache(() => [
      { name: 'First', credential: unavailable },
      { name: 'Second', credential: broken },
      { name: 'Third', credential: never },
    ]);
    const error = await Promise.resolve(cache.token('api://a/.default', 'contoso')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AzureTokenError);
    expect((error as AzureTokenError).attempts).toEqual([
      { name: 'First', reason: 'not signed in.' },
      { name: 'Second', reason: 'AADSTS700016: application not found' },
    ]);
    expect(never.calls).toBe(0);
  });
});

describe('refusedWrite', () => {
  const target = remote({ origin: 'https://queue.example', hostname: 'queue.example' }) as RemoteTarget;
  const api = route('queue.x.localhost', target);
  const deny = [parseRequestRule('GET /*/messages') as RequestRule];

  it('lets everything through a remote that is not read-only', () => {
    expect(refusedWrite(api, target, {}, 'DELETE', '/q', undefined)).toBeUndefined();
    expect(refusedWrite(api, target, { readOnly: false, deny }, 'GET', '/q/messages', undefined)).toBeUndefined();
  });

  it('refuses a method that is not safe, naming the profile file that allows writes', () => {
    const refused = refusedWrite(api, target, { readOnly: true }, 'POST', '/q', '/work/x');
    expect(refused?.why).toBe('writes: read-only');
    expect(refused?.info).toMatchObject({ status: 403, code: 'DEVPROXY_ERR_READ_ONLY', service: 'queue', worktree: 'x', target: 'https://queue.example' });
    expect(refused?.info.hint).toContain('/work/x/.devproxy/profile.yaml');
  });

  it('refuses a safe method only where a deny rule names it', () => {
    expect(refusedWrite(api, target, { readOnly: true, deny }, 'GET', '/q/messages', undefined)?.why).toBe('writes: read-only, deny "GET /*/messages"');
    expect(refusedWrite(api, target, { readOnly: true, deny }, 'GET', '/q', undefined)).toBeUndefined();
    expect(refusedWrite(api, target, { readOnly: true, deny }, 'HEAD', '/q/messages', undefined)).toBeUndefined();
  });
});

describe('hopFailure', () => {
  const api = route('api.x.localhost', undefined);

  it('shows a refusal\'s own page, and a 502 naming the service for anything else', () => {
    const info: ProxyErrorInfo = { status: 502, code: 'DEVPROXY_ERR_REMOTE_AUTH', message: 'no token', hint: 'az login' };
    expect(hopFailure(api, new HopRefusal(info))).toBe(info);
    expect(hopFailure(api, new Error('boom'))).toMatchObject({ status: 502, code: 'DEVPROXY_ERR_INTERNAL', service: 'api', worktree: 'x' });
    expect(hopFailure(api, new Error('boom')).message).toContain('boom');
  });
});

describe('wake', () => {
  it('plans a wait only for bodiless navigations and retried methods of a remote with a wake timeout', () => {
    const hop = { wakeTimeoutMs: 60_000 };
    expect(wakePlanFor(hop, 'GET', 'text/html,application/xhtml+xml', false)).toEqual({ timeoutMs: 60_000, navigation: true });
    expect(wakePlanFor(hop, 'GET', 'application/json', false)).toEqual({ timeoutMs: 60_000, navigation: false });
    expect(wakePlanFor(hop, 'OPTIONS', undefined, false)).toEqual({ timeoutMs: 60_000, navigation: false });
    expect(wakePlanFor(hop, 'GET', 'application/json', true)).toBeUndefined();
    expect(wakePlanFor(hop, 'DELETE', 'application/json', false)).toBeUndefined();
    expect(wakePlanFor({}, 'GET', 'text/html', false)).toBeUndefined();
  });

  it('backs off from 250 ms, doubling up to 4 s', () => {
    expect([1, 2, 3, 4, 5, 6, 10].map(wakeDelayMs)).toEqual([250, 500, 1_000, 2_000, 4_000, 4_000, 4_000]);
  });

  it('retries while the next attempt starts within the timeout, and never past 16 attempts', () => {
    const plan = { timeoutMs: 2_000, navigation: false };
    expect(mayRetryWake(plan, 1, 0)).toBe(true);
    expect(mayRetryWake(plan, 3, 1_000)).toBe(true);
    expect(mayRetryWake(plan, 3, 1_001)).toBe(false);
    expect(mayRetryWake({ timeoutMs: 3_600_000, navigation: false }, 16, 0)).toBe(false);
  });

  it('counts 502–504 and timeouts or a refused connection, down the cause chain, as still waking', () => {
    expect([500, 501, 502, 503, 504, 505].filter(isWakingStatus)).toEqual([502, 503, 504]);
    expect(wakeErrorCode(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe('ECONNREFUSED');
    expect(wakeErrorCode(new Error('fetch failed', { cause: Object.assign(new Error('t'), { code: 'UND_ERR_CONNECT_TIMEOUT' }) }))).toBe('UND_ERR_CONNECT_TIMEOUT');
    expect(wakeErrorCode(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBeUndefined();
    expect(wakeErrorCode('ECONNREFUSED')).toBeUndefined();
  });
});
