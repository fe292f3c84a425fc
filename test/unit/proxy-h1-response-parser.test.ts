import { describe, expect, it } from 'vitest';
import { MAX_HEAD_BYTES } from '../../proxy/h1-grammar.js';
import { H1ParseError, H1ResponseParser, MAX_CHUNK_LINE_BYTES, type ResponseSink } from '../../proxy/h1-response-parser.js';

interface Parsed {
  heads: { status: number; reason: string; raw: string[] }[];
  body: string;
  trailers: string[] | undefined;
  /** Bytes of the input that belonged to the response. */
  used: number;
  parser: H1ResponseParser;
}

/** Feeds `input` in pieces of `step` bytes (all at once when 0); collects what the sink saw. */
function parse(input: string | Buffer, options: { head?: boolean; step?: number; finish?: boolean } = {}): Parsed {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const sink: ResponseSink = {
    onResponseHead: (status, reason, raw) => out.heads.push({ status, reason, raw }),
    onResponseBody: (chunk) => (out.body += chunk.toString('latin1')),
    onResponseComplete: (trailers) => (out.trailers = trailers),
  };
  const parser = new H1ResponseParser(sink);
  const out: Parsed = { heads: [], body: '', trailers: undefined, used: 0, parser };
  parser.expect(options.head ?? false);
  const step = options.step || bytes.length;
  for (let at = 0; at < bytes.length && !parser.complete; at += step) out.used += parser.execute(bytes.subarray(at, at + step));
  if (options.finish) parser.finish();
  return out;
}

/** The `HPE_*` code `input` is refused with. */
function refusal(input: string, options: { head?: boolean; finish?: boolean } = {}): string {
  try {
    parse(input, options);
  } catch (error) {
    expect(error).toBeInstanceOf(H1ParseError);
    return (error as H1ParseError).code;
  }
  return 'accepted';
}

const CHUNKED = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n1A\r\n' + 'x'.repeat(26) + '\r\n0\r\nServer-Timing: db;dur=53\r\nX-Sum: 1\r\n\r\n';

describe('H1ResponseParser: what it accepts', () => {
  it('frames a Content-Length body the same whichever way the bytes are split', () => {
    const input = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello';
    for (const step of [0, 1, 2, 3, 7]) {
      const out = parse(input, { step });
      expect(out.heads).toEqual([{ status: 200, reason: 'OK', raw: ['Content-Length', '5', 'Content-Type', 'text/plain'] }]);
      expect(out.body).toBe('hello');
      expect(out.trailers).toEqual([]);
      expect(out.parser.keepAlive).toBe(true);
    }
  });

  it('decodes a chunked body with extensions and trailers whichever way the bytes are split', () => {
    for (const step of [0, 1, 2, 5, 13]) {
      const out = parse(CHUNKED, { step });
      expect(out.body).toBe('hello' + 'x'.repeat(26));
      expect(out.trailers).toEqual(['Server-Timing', 'db;dur=53', 'X-Sum', '1']);
      expect(out.parser.complete).toBe(true);
      expect(out.parser.keepAlive).toBe(true);
    }
  });

  it('keeps header names, order, repeats and bytes outside ASCII as sent; trims optional whitespace', () => {
    const out = parse('HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nx-CUSTOM:\tv \r\nSet-Cookie: b=2\r\nContent-Disposition: attachment; filename="\xc3\xa9.txt"\r\nEmpty:\r\nContent-Length: 0\r\n\r\n');
    expect(out.heads[0]?.raw).toEqual(['Set-Cookie', 'a=1', 'x-CUSTOM', 'v', 'Set-Cookie', 'b=2', 'Content-Disposition', 'attachment; filename="\xc3\xa9.txt"', 'Empty', '', 'Content-Length', '0']);
  });

  it('reads no body after HEAD, 204 and 304 whatever their headers announce', () => {
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', { head: true })).toMatchObject({ body: '', trailers: [] });
    expect(parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', { head: true })).toMatchObject({ body: '', trailers: [] });
    expect(parse('HTTP/1.1 204 No Content\r\n\r\n')).toMatchObject({ body: '', trailers: [] });
    const notModified = parse('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 200');
    expect(notModified).toMatchObject({ body: '', trailers: [], used: 49 });
    expect(notModified.parser.keepAlive).toBe(true);
  });

  it('marks a 204 or 304 that announces a body (nonzero Content-Length or chunked), not a HEAD answer', () => {
    expect(parse('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n').parser.bodyDeclared).toBe(true);
    expect(parse('HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n').parser.bodyDeclared).toBe(true);
    expect(parse('HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n').parser.bodyDeclared).toBe(false);
    expect(parse('HTTP/1.1 304 Not Modified\r\n\r\n').parser.bodyDeclared).toBe(false);
    expect(parse('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', { head: true }).parser.bodyDeclared).toBe(false);
  });

  it('reports interim answers (103 Early Hints) before the final one', () => {
    for (const step of [0, 1, 4]) {
      const out = parse('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', { step });
      expect(out.heads.map((h) => h.status)).toEqual([103, 200]);
      expect(out.heads[0]?.raw).toEqual(['Link', '</a.css>; rel=preload']);
      expect(out.body).toBe('ok');
    }
  });

  it('accepts a status line without reason phrase, and an empty one', () => {
    expect(parse('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n').heads[0]).toMatchObject({ status: 200, reason: '' });
    expect(parse('HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n').heads[0]).toMatchObject({ status: 404, reason: '' });
  });

  it('reads a body without length until the connection closes, and never reuses that connection', () => {
    const out = parse('HTTP/1.1 200 OK\r\n\r\npart one, ', { step: 3 });
    expect(out.parser.untilClose).toBe(true);
    expect(out.trailers).toBeUndefined();
    out.parser.execute(Buffer.from('part two'));
    out.parser.finish();
    expect(out.body).toBe('part one, part two');
    expect(out.trailers).toEqual([]);
    expect(out.parser.keepAlive).toBe(false);
  });

  it('keeps the connection only as the version and Connection allow', () => {
    expect(parse('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').parser.keepAlive).toBe(false);
    expect(parse('HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 0\r\n\r\n').parser.keepAlive).toBe(false);
    expect(parse('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').parser.keepAlive).toBe(false);
    expect(parse('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').parser.keepAlive).toBe(true);
    const hinted = parse('HTTP/1.1 200 OK\r\nKeep-Alive: max=100, timeout=5\r\nContent-Length: 0\r\n\r\n').parser;
    expect(hinted.keepAlive).toBe(true);
    expect(hinted.keepAliveSeconds).toBe(5);
  });

  it('stops at the end of the response: bytes after it are not part of it', () => {
    const out = parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n');
    expect(out.body).toBe('ok');
    expect(out.used).toBe(40);
    expect(out.parser.bytesSeen).toBe(40);
  });
});

describe('H1ResponseParser: what it refuses (framing in doubt)', () => {
  const head = (lines: string): string => `HTTP/1.1 200 OK\r\n${lines}\r\n`;
  it.each([
    ['HTTP/2.0 200 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 20 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 099 Low\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['ICY 200 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1  200 OK\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n', 'HPE_INVALID_STATUS'],
    ['HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_STATUS'],
    [head('Content-Length: 0\nX: y\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
    [head('X: a\rb\r\nContent-Length: 0\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
    [head('X: a\0b\r\nContent-Length: 0\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
    [head('X: a\r\n folded\r\nContent-Length: 0\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
    [head('Content-Length : 0\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
    [head('Bad Name: 1\r\nContent-Length: 0\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
    [head(': nameless\r\nContent-Length: 0\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
    [head('Content-Length: 2\r\nContent-Length: 2\r\n'), 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    [head('Content-Length: 2, 2\r\n'), 'HPE_INVALID_CONTENT_LENGTH'],
    [head('Content-Length: -1\r\n'), 'HPE_INVALID_CONTENT_LENGTH'],
    [head('Content-Length: 0x10\r\n'), 'HPE_INVALID_CONTENT_LENGTH'],
    [head('Content-Length: \r\n'), 'HPE_INVALID_CONTENT_LENGTH'],
    [head('Content-Length: 1234567890123456\r\n'), 'HPE_INVALID_CONTENT_LENGTH'],
    [head('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n'), 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    [head('Transfer-Encoding: chunked\r\nContent-Length: 5\r\n'), 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    [head('Transfer-Encoding: gzip, chunked\r\n'), 'HPE_INVALID_TRANSFER_ENCODING'],
    [head('Transfer-Encoding: chunked, gzip\r\n'), 'HPE_INVALID_TRANSFER_ENCODING'],
    [head('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n'), 'HPE_INVALID_TRANSFER_ENCODING'],
    [head('Transfer-Encoding: identity\r\n'), 'HPE_INVALID_TRANSFER_ENCODING'],
    ['HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'HPE_INVALID_TRANSFER_ENCODING'],
  ])('refuses %j (%s)', (input, code) => {
    expect(refusal(input)).toBe(code);
  });

  const chunked = (body: string): string => `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
  it.each([
    [chunked('0x5\r\nhello\r\n0\r\n\r\n'), 'HPE_INVALID_CHUNK_SIZE'],
    [chunked('\r\nhello\r\n0\r\n\r\n'), 'HPE_INVALID_CHUNK_SIZE'],
    [chunked('-5\r\nhello\r\n0\r\n\r\n'), 'HPE_INVALID_CHUNK_SIZE'],
    [chunked('g\r\n'), 'HPE_INVALID_CHUNK_SIZE'],
    [chunked('5\nhello\r\n0\r\n\r\n'), 'HPE_INVALID_CHUNK_SIZE'],
    [chunked('5 hello\r\n'), 'HPE_INVALID_CHUNK_SIZE'],
    [chunked('12345678901234\r\n'), 'HPE_INVALID_CHUNK_SIZE'],
    [chunked('5\r\nhelloXY0\r\n\r\n'), 'HPE_STRICT'],
    [chunked('5\r\nhello\n0\r\n\r\n'), 'HPE_STRICT'],
    [chunked('0\r\nBad Trailer\r\n\r\n'), 'HPE_INVALID_HEADER_TOKEN'],
    [chunked('0\r\n garbage'), 'HPE_INVALID_HEADER_TOKEN'],
  ])('refuses the chunked body %j (%s)', (input, code) => {
    expect(refusal(input)).toBe(code);
  });

  it('refuses a head, a chunk-size line or a trailer section longer than its bound', () => {
    expect(refusal(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n\r\n`)).toBe('HPE_HEADER_OVERFLOW');
    expect(refusal(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX_HEAD_BYTES)}`)).toBe('HPE_HEADER_OVERFLOW');
    expect(refusal(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;${'e'.repeat(MAX_CHUNK_LINE_BYTES)}`)).toBe('HPE_CHUNK_EXTENSIONS_OVERFLOW');
    expect(refusal(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ${'a'.repeat(MAX_HEAD_BYTES)}`)).toBe('HPE_HEADER_OVERFLOW');
    // Just under the bound is fine.
    expect(refusal(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX_HEAD_BYTES - 40)}\r\nContent-Length: 0\r\n\r\n`)).toBe('accepted');
  });

  it('refuses an end of stream before the answer is complete (a truncated answer is never a clean end)', () => {
    expect(refusal('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf', { finish: true })).toBe('HPE_INVALID_EOF_STATE');
    expect(refusal('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', { finish: true })).toBe('HPE_INVALID_EOF_STATE');
    expect(refusal('HTTP/1.1 200 OK\r\nContent-Le', { finish: true })).toBe('HPE_INVALID_EOF_STATE');
    expect(refusal('', { finish: true })).toBe('HPE_INVALID_EOF_STATE');
  });
});
