import { CredentialUnavailableError, type AccessToken, type TokenCredential } from '@azure/identity';
import { describe, expect, it } from 'vitest';
import { AzureTokenCache, AzureTokenError, TOKEN_REFRESH_MARGIN_MS } from '../../proxy/azure-token.js';
import { renderWakingPage } from '../../proxy/error-pages.js';
import { buildUpstreamHeaders } from '../../proxy/forward-headers.js';
import { isRetriedMethod, isSafeMethod } from '../../proxy/remote-hop.js';
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
