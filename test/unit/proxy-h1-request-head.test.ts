import { describe, expect, it } from 'vitest';
import { MAX_SERVED_FIELDS, parseServedHead } from '../../proxy/h1-request-head.js';

/** A head as the front sees it: lines joined by CRLF, without the final blank line. */
function head(...lines: string[]): string {
  return lines.join('\r\n');
}

describe('parseServedHead: the heads the front serves', () => {
  it('reads method, target, raw fields (names as sent, values trimmed) and lower-case headers', () => {
    const served = parseServedHead(head('GET /a/b?c=d%20e HTTP/1.1', 'Host: api.x.localhost', 'X-Thing:  spaced\t ', 'accept: */*'));
    expect(served).toEqual({
      method: 'GET',
      url: '/a/b?c=d%20e',
      rawHeaders: ['Host', 'api.x.localhost', 'X-Thing', 'spaced', 'accept', '*/*'],
      headers: { host: 'api.x.localhost', 'x-thing': 'spaced', accept: '*/*' },
    });
  });

  it('serves any token method, an empty value, obs-text in a value (as node reads it), Content-Length 0 and Connection: keep-alive', () => {
    expect(parseServedHead(head('PROPFIND / HTTP/1.1', 'Host: a.localhost'))?.method).toBe('PROPFIND');
    expect(parseServedHead(head('GET / HTTP/1.1', 'Host: a', 'X-Empty:'))?.headers['x-empty']).toBe('');
    expect(parseServedHead(head('GET / HTTP/1.1', 'Host: a', 'X-Latin: caf\xe9'))?.rawHeaders).toEqual(['Host', 'a', 'X-Latin', 'caf\xe9']);
    expect(parseServedHead(head('DELETE /x HTTP/1.1', 'Host: a', 'Content-Length: 0'))?.headers['content-length']).toBe('0');
    expect(parseServedHead(head('GET / HTTP/1.1', 'Host: a', 'Connection: Keep-Alive'))?.headers.connection).toBe('Keep-Alive');
    expect(parseServedHead(head('GET / HTTP/1.1', 'Host:'))?.headers.host).toBe('');
  });

  it('serves up to the field limit and leaves a longer head to node', () => {
    const fields = (n: number): string[] => ['Host: a', ...Array.from({ length: n - 1 }, (_, i) => `X-F${i}: v`)];
    expect(parseServedHead(head('GET / HTTP/1.1', ...fields(MAX_SERVED_FIELDS)))).toBeDefined();
    expect(parseServedHead(head('GET / HTTP/1.1', ...fields(MAX_SERVED_FIELDS + 1)))).toBeUndefined();
  });
});

describe('parseServedHead: what it leaves to node:http', () => {
  const leftToNode: Array<[string, string]> = [
    ['no Host (node answers 400)', head('GET / HTTP/1.1', 'Accept: */*')],
    ['HTTP/1.0', head('GET / HTTP/1.0', 'Host: a.localhost')],
    ['HTTP/2 preface', 'PRI * HTTP/2.0'],
    ['absolute-form target', head('GET http://a.localhost/ HTTP/1.1', 'Host: a.localhost')],
    ['asterisk-form target', head('OPTIONS * HTTP/1.1', 'Host: a.localhost')],
    ['authority-form (CONNECT)', head('CONNECT a.localhost:443 HTTP/1.1', 'Host: a.localhost')],
    ['a space in the target', head('GET /a b HTTP/1.1', 'Host: a.localhost')],
    ['a byte above 0x7e in the target', head('GET /caf\xe9 HTTP/1.1', 'Host: a.localhost')],
    ['a lower-case version', head('GET / http/1.1', 'Host: a.localhost')],
    ['two spaces in the request line', head('GET  / HTTP/1.1', 'Host: a.localhost')],
    ['a body by length', head('POST / HTTP/1.1', 'Host: a.localhost', 'Content-Length: 5')],
    ['a malformed length', head('POST / HTTP/1.1', 'Host: a', 'Content-Length: 0x0')],
    ['a chunked body', head('POST / HTTP/1.1', 'Host: a.localhost', 'Transfer-Encoding: chunked')],
    ['Expect: 100-continue', head('PUT / HTTP/1.1', 'Host: a', 'Expect: 100-continue', 'Content-Length: 0')],
    ['an upgrade', head('GET / HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket')],
    ['Connection: close', head('GET / HTTP/1.1', 'Host: a', 'Connection: close')],
    ['a connection option list', head('GET / HTTP/1.1', 'Host: a', 'Connection: keep-alive, x-hop')],
    ['a repeated field', head('GET / HTTP/1.1', 'Host: a.localhost', 'HOST: b.localhost')],
    ['a repeated Content-Length', head('GET / HTTP/1.1', 'Host: a', 'Content-Length: 0', 'content-length: 0')],
    ['obs-fold', head('GET / HTTP/1.1', 'Host: a', 'X-A: one', ' two')],
    ['a bare LF inside the head', head('GET / HTTP/1.1', 'Host: a', 'X-A: one\nX-B: two')],
    ['a bare CR inside a value', head('GET / HTTP/1.1', 'Host: a', 'X-A: one\rtwo')],
    ['a space before the colon', head('GET / HTTP/1.1', 'Host : a.localhost')],
    ['a field without a colon', head('GET / HTTP/1.1', 'Host')],
    ['an empty field name', head('GET / HTTP/1.1', 'Host: a', ': x')],
    ['a NUL in a value', head('GET / HTTP/1.1', 'Host: a', 'X-A: a\0b')],
    ['DEL in a value', head('GET / HTTP/1.1', 'Host: a', 'X-A: a\x7fb')],
    ['a separator in a name', head('GET / HTTP/1.1', 'Host: a', 'X(A): b')],
    ['a field named __proto__ (node keeps it on a plain object)', head('GET / HTTP/1.1', 'Host: a', '__proto__: x')],
    ['a field named constructor', head('GET / HTTP/1.1', 'Host: a', 'constructor: y')],
    ['a CR ending the head', 'GET / HTTP/1.1\r\nHost: a\r'],
    ['a bare LF after the request line', 'GET / HTTP/1.1\nHost: a'],
    ['text after the version', head('GET / HTTP/1.1x', 'Host: a')],
    ['a target not starting with a slash', head('GET a/b HTTP/1.1', 'Host: a')],
    ['a tab before the colon', head('GET / HTTP/1.1', 'Host\t: a')],
    ['an empty line inside (a second head)', head('GET / HTTP/1.1', 'Host: a', '', 'GET / HTTP/1.1')],
  ];
  for (const [what, text] of leftToNode) {
    it(`leaves ${what} to node`, () => {
      expect(parseServedHead(text)).toBeUndefined();
    });
  }
});
