import { describe, expect, it } from 'vitest';
import { rewriteLocation, rewriteSetCookie, type RemoteAuthority, type StableOrigin } from '../../proxy/response-rewrite.js';

const remote: RemoteAuthority = { hostname: 'contoso-api-dev.azurecontainerapps.io', authority: 'contoso-api-dev.azurecontainerapps.io', basePath: '' };
const withBase: RemoteAuthority = { ...remote, basePath: '/api' };
const withPort: RemoteAuthority = { hostname: 'dev.example.test', authority: 'dev.example.test:8443', basePath: '' };
const http8080: StableOrigin = { scheme: 'http', host: 'api.feature-x.localhost', port: 8080 };
const https443: StableOrigin = { scheme: 'https', host: 'api.feature-x.localhost', port: 443 };

describe('rewriteLocation', () => {
  it.each<[string, RemoteAuthority, StableOrigin, string]>([
    ['https://contoso-api-dev.azurecontainerapps.io/login?x=1#f', remote, http8080, 'http://api.feature-x.localhost:8080/login?x=1#f'],
    ['http://contoso-api-dev.azurecontainerapps.io/login', remote, http8080, 'http://api.feature-x.localhost:8080/login'],
    ['https://CONTOSO-API-DEV.azurecontainerapps.io/', remote, https443, 'https://api.feature-x.localhost/'],
    ['https://contoso-api-dev.azurecontainerapps.io:443/a', remote, https443, 'https://api.feature-x.localhost/a'],
    ['//contoso-api-dev.azurecontainerapps.io/a', remote, http8080, 'http://api.feature-x.localhost:8080/a'],
    ['https://contoso-api-dev.azurecontainerapps.io/api/users', withBase, http8080, 'http://api.feature-x.localhost:8080/users'],
    ['https://contoso-api-dev.azurecontainerapps.io/api', withBase, http8080, 'http://api.feature-x.localhost:8080/'],
    ['https://contoso-api-dev.azurecontainerapps.io/api?x=1', withBase, http8080, 'http://api.feature-x.localhost:8080/?x=1'],
    ['https://contoso-api-dev.azurecontainerapps.io/apix', withBase, http8080, 'http://api.feature-x.localhost:8080/apix'],
    ['https://dev.example.test:8443/a', withPort, http8080, 'http://api.feature-x.localhost:8080/a'],
    // Unchanged: relative, other hosts, other ports, garbage.
    ['/login', remote, http8080, '/login'],
    ['login', remote, http8080, 'login'],
    ['https://login.microsoftonline.com/x', remote, http8080, 'https://login.microsoftonline.com/x'],
    ['https://contoso-api-dev.azurecontainerapps.io:8443/a', remote, http8080, 'https://contoso-api-dev.azurecontainerapps.io:8443/a'],
    ['https://dev.example.test/a', withPort, http8080, 'https://dev.example.test/a'],
    ['https://[bad/', remote, http8080, 'https://[bad/'],
  ])('%s', (location, from, stable, expected) => {
    expect(rewriteLocation(location, from, stable)).toBe(expected);
  });
});

describe('rewriteSetCookie', () => {
  it.each<[string, RemoteAuthority, boolean, string]>([
    ['sid=1; Domain=contoso-api-dev.azurecontainerapps.io; Path=/', remote, false, 'sid=1; Path=/'],
    ['sid=1; domain=.azurecontainerapps.io; HttpOnly', remote, false, 'sid=1; HttpOnly'],
    ['sid=1; Domain=example.org', remote, false, 'sid=1; Domain=example.org'],
    ['sid=1; Domain=pi-dev.azurecontainerapps.io', remote, false, 'sid=1; Domain=pi-dev.azurecontainerapps.io'],
    ['sid=1; Secure; HttpOnly', remote, false, 'sid=1; HttpOnly'],
    ['sid=1; Secure; HttpOnly', remote, true, 'sid=1; Secure; HttpOnly'],
    ['sid=1; Secure; SameSite=None', remote, false, 'sid=1'],
    ['sid=1; Secure; SameSite=None', remote, true, 'sid=1; Secure; SameSite=None'],
    ['sid=1; SameSite=Lax; Secure', remote, false, 'sid=1; SameSite=Lax'],
    ['sid=1; Path=/api/auth', withBase, false, 'sid=1; Path=/auth'],
    ['sid=1; Path=/api', withBase, false, 'sid=1; Path=/'],
    ['sid=a=b; Expires=Wed, 21 Oct 2026 07:28:00 GMT', remote, false, 'sid=a=b; Expires=Wed, 21 Oct 2026 07:28:00 GMT'],
  ])('%s (https client: %s)', (value, from, https, expected) => {
    expect(rewriteSetCookie(value, from, https)).toBe(expected);
  });
});
