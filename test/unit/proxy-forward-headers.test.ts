import { describe, expect, it } from 'vitest';
import { buildClientHeaders, buildUpstreamHeaders, flattenHeaders, mayCarryTrailers, readHops } from '../../proxy/forward-headers.js';

const context = { host: 'api.wt.localhost:8080', forwardedFor: '127.0.0.1', forwardedHost: 'api.wt.localhost:8080', forwardedProto: 'http' as const, hops: 0 };

describe('buildUpstreamHeaders', () => {
  it('drops pseudo-headers, hop-by-hop, Connection-listed and proxy-owned headers, then adds its own', () => {
    const raw = [
      ':authority', 'api.wt.localhost:8080', ':method', 'GET',
      'Host', 'ignored', 'Accept', 'text/html', 'Connection', 'keep-alive, X-Private', 'X-Private', 'secret',
      'Expect', '100-continue', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'TE', 'gzip',
      'X-Forwarded-For', '6.6.6.6', 'Forwarded', 'for=6.6.6.6', 'X-Devproxy-Route', 'remote', 'x-devproxy-hops', '2',
    ];
    expect(buildUpstreamHeaders(raw, { ...context, hops: 2 })).toEqual([
      'Accept', 'text/html',
      'host', 'api.wt.localhost:8080',
      'x-forwarded-for', '127.0.0.1',
      'x-forwarded-host', 'api.wt.localhost:8080',
      'x-forwarded-proto', 'http',
      'x-devproxy-hops', '3',
    ]);
  });

  it('keeps TE: trailers and joins split HTTP/2 cookies into one header', () => {
    const out = buildUpstreamHeaders(['te', 'trailers', 'cookie', 'a=1', 'cookie', 'b=2'], context);
    expect(out.slice(0, 4)).toEqual(['cookie', 'a=1; b=2', 'te', 'trailers']);
  });

  it('passes a WebSocket upgrade on as Connection: upgrade with its Upgrade, still without Connection-listed headers', () => {
    const raw = ['Connection', 'Upgrade, X-Private', 'Upgrade', 'websocket', 'X-Private', 'secret', 'Sec-WebSocket-Key', 'k'];
    expect(buildUpstreamHeaders(raw, { ...context, upgrade: 'websocket' })).toEqual([
      'Sec-WebSocket-Key', 'k',
      'host', 'api.wt.localhost:8080',
      'x-forwarded-for', '127.0.0.1',
      'x-forwarded-host', 'api.wt.localhost:8080',
      'x-forwarded-proto', 'http',
      'x-devproxy-hops', '1',
      'connection', 'upgrade',
      'upgrade', 'websocket',
    ]);
  });

  it('drops fields a later Connection header names, cookies included', () => {
    const out = buildUpstreamHeaders(['X-Private', 's', 'cookie', 'a=1', 'Accept', '*/*', 'Connection', 'X-Private, Cookie'], context);
    expect(out.slice(0, 2)).toEqual(['Accept', '*/*']);
    expect(out[2]).toBe('host');
  });
});

describe('buildClientHeaders', () => {
  it('drops hop-by-hop and Connection-listed response headers, rewrites with the rewriter and tags the route', () => {
    const raw = ['Connection', 'x-hop', 'x-hop', '1', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'Location', 'https://r/x', 'Set-Cookie', 'a=1', 'x-devproxy-route', 'spoofed'].map((s) => Buffer.from(s));
    const rewriter = { location: (v: string) => `L(${v})`, setCookie: (v: string) => `C(${v})` };
    expect(buildClientHeaders(raw, 'remote', rewriter)).toEqual(['Location', 'L(https://r/x)', 'Set-Cookie', 'C(a=1)', 'x-devproxy-route', 'remote']);
    expect(buildClientHeaders(raw, 'local', undefined)).toEqual(['Location', 'https://r/x', 'Set-Cookie', 'a=1', 'x-devproxy-route', 'local']);
  });

  it('keeps the bytes of a remote Set-Cookie and of a Location the rewriter leaves alone; a rewritten Location is read as UTF-8', () => {
    const raw = [Buffer.from('Set-Cookie'), Buffer.from('n=café; Path=/'), Buffer.from('Location'), Buffer.from('https://other.example/€')];
    const latin1 = (text: string) => Buffer.from(text).toString('latin1');
    const unchanged = { location: (v: string) => v, setCookie: (v: string) => v };
    expect(buildClientHeaders(raw, 'remote', unchanged)).toEqual(['Set-Cookie', latin1('n=café; Path=/'), 'Location', latin1('https://other.example/€'), 'x-devproxy-route', 'remote']);
    const rewriting = { location: (v: string) => new URL(v.replace('other.example', 'api.x.localhost')).href, setCookie: (v: string) => v };
    expect(buildClientHeaders(raw, 'remote', rewriting)[3]).toBe('https://api.x.localhost/%E2%82%AC');
  });

  it('drops a field named by a Connection header that comes after it', () => {
    expect(buildClientHeaders(['X-Hop', '1', 'Etag', '"a"', 'Connection', 'close, X-Hop'], 'local', undefined)).toEqual(['Etag', '"a"', 'x-devproxy-route', 'local']);
  });
});

describe('flattenHeaders', () => {
  it('lists each value of a repeated field as a field of its own and skips absent ones', () => {
    const headers = { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'], etag: undefined, 'x-one': 'v' };
    expect(flattenHeaders(headers)).toEqual(['content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2', 'x-one', 'v']);
  });
});

describe('readHops', () => {
  it.each([
    [[], 0],
    [['X-Devproxy-Hops', '3'], 3],
    [['x-devproxy-hops', 'nonsense'], 0],
    [['x-devproxy-hops', '-4'], 0],
  ])('%j → %d', (raw, hops) => {
    expect(readHops(raw as string[])).toBe(hops);
  });
});

describe('mayCarryTrailers', () => {
  it('is true only for an answer with a Transfer-Encoding (any case, string or Buffer names)', () => {
    expect(mayCarryTrailers(['Content-Type', 'text/plain', 'Transfer-Encoding', 'chunked'])).toBe(true);
    expect(mayCarryTrailers([Buffer.from('transfer-encoding'), Buffer.from('chunked')])).toBe(true);
    expect(mayCarryTrailers(['Content-Length', '2', 'Trailer', 'x-checksum'])).toBe(false);
    expect(mayCarryTrailers([])).toBe(false);
  });
});
