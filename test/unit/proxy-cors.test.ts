import { describe, expect, it } from 'vitest';
import { answeredCors, isPreflight, isWorktreeOrigin, preflightHeaders, withCorsHeaders } from '../../proxy/cors.js';

const ORIGIN = 'http://ui.x.localhost:8080';

/** The value of `name` in flat headers (first occurrence, case-insensitive). */
function get(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if ((headers[i] as string).toLowerCase() === name) return headers[i + 1];
  return undefined;
}

describe('isWorktreeOrigin', () => {
  const hosts = new Set(['ui.x.localhost', 'api.x.localhost']);
  it.each([
    ['http://ui.x.localhost:8080', true],
    ['https://ui.x.localhost:8443', true],
    ['HTTP://UI.X.LOCALHOST:8080', true],
    ['http://ui.x.localhost:8443', false],
    ['https://ui.x.localhost:8080', false],
    ['http://ui.x.localhost', false],
    ['http://ui.y.localhost:8080', false],
    ['https://evil.example', false],
    ['null', false],
    ['http://ui.x.localhost:8080/path', false],
    ['http://user@ui.x.localhost:8080', false],
  ])('%s → %s', (origin, allowed) => {
    expect(isWorktreeOrigin(origin, hosts, 8080, 8443)).toBe(allowed);
  });

  it('accepts default ports when the proxy listens on them', () => {
    expect(isWorktreeOrigin('http://ui.x.localhost', hosts, 80, 443)).toBe(true);
    expect(isWorktreeOrigin('https://ui.x.localhost', hosts, 80, undefined)).toBe(false);
  });
});

describe('isPreflight and answeredCors', () => {
  it('recognises a preflight only as OPTIONS naming a method', () => {
    expect(isPreflight('OPTIONS', 'PUT')).toBe(true);
    expect(isPreflight('OPTIONS', undefined)).toBe(false);
    expect(isPreflight('GET', 'PUT')).toBe(false);
  });

  it('sees an allow-origin of the upstream in raw (Buffer or string) headers, whatever its case', () => {
    expect(answeredCors([Buffer.from('Access-Control-Allow-Origin'), Buffer.from('*')])).toBe(true);
    expect(answeredCors(['access-control-allow-methods', 'GET', 'allow', 'GET'])).toBe(false);
  });
});

describe('preflightHeaders', () => {
  it('answers with the origin, credentials, the requested method and headers, and the route', () => {
    const headers = preflightHeaders(ORIGIN, 'DELETE', 'authorization', 'local');
    expect(get(headers, 'access-control-allow-origin')).toBe(ORIGIN);
    expect(get(headers, 'access-control-allow-credentials')).toBe('true');
    expect(get(headers, 'access-control-allow-methods')).toBe('DELETE');
    expect(get(headers, 'access-control-allow-headers')).toBe('authorization');
    expect(get(headers, 'x-devproxy-route')).toBe('local');
    expect(get(preflightHeaders(ORIGIN, 'GET', undefined, 'remote'), 'access-control-allow-headers')).toBeUndefined();
  });
});

describe('withCorsHeaders', () => {
  it('replaces a remote allow-origin/credentials, adds Origin to Vary once and exposes the response\'s own headers', () => {
    const out = withCorsHeaders(
      [
        'Access-Control-Allow-Origin', '*',
        'Access-Control-Allow-Credentials', 'false',
        'Vary', 'Accept-Encoding',
        'Access-Control-Expose-Headers', 'x-ms-request-id, *',
        'ETag', '"0x8D"',
        'x-ms-request-id', 'r1',
        'x-ms-version', '2025-01-05',
        'Content-Type', 'application/xml',
        'Content-Length', '12',
        'Set-Cookie', 'a=1',
        'x-devproxy-route', 'remote',
      ],
      ORIGIN,
      'replace',
    );
    expect(out).toEqual([
      'Vary', 'Accept-Encoding, Origin',
      'ETag', '"0x8D"',
      'x-ms-request-id', 'r1',
      'x-ms-version', '2025-01-05',
      'Content-Type', 'application/xml',
      'Content-Length', '12',
      'Set-Cookie', 'a=1',
      'x-devproxy-route', 'remote',
      'access-control-allow-origin', ORIGIN,
      'access-control-allow-credentials', 'true',
      'access-control-expose-headers', 'x-ms-request-id, etag, x-ms-version, x-devproxy-route',
    ]);
  });

  it('adds Vary: Origin when there is none and keeps a Vary that already names Origin or *', () => {
    expect(get(withCorsHeaders([], ORIGIN, 'replace'), 'vary')).toBe('Origin');
    expect(withCorsHeaders(['vary', 'origin'], ORIGIN, 'replace').filter((h) => /^vary$/i.test(h))).toHaveLength(1);
    expect(get(withCorsHeaders(['Vary', '*'], ORIGIN, 'replace'), 'vary')).toBe('*');
  });

  it('leaves a local app that answered CORS itself untouched, and adds CORS to one that did not', () => {
    const own = ['access-control-allow-origin', 'http://localhost:5173', 'vary', 'Origin', 'x-devproxy-route', 'local'];
    expect(withCorsHeaders(own, ORIGIN, 'unless-answered')).toEqual(own);
    const bare = withCorsHeaders(['etag', 'W/"1"', 'x-devproxy-route', 'local'], ORIGIN, 'unless-answered');
    expect(get(bare, 'access-control-allow-origin')).toBe(ORIGIN);
    expect(get(bare, 'access-control-allow-credentials')).toBe('true');
    expect(get(bare, 'access-control-expose-headers')).toBe('etag, x-devproxy-route');
  });
});
