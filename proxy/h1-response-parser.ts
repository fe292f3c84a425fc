/**
 * A strict, incremental HTTP/1.1 response parser for the local upstream client (`h1-upstream.ts`).
 * Pure: bytes in, head/body/end calls out, no I/O. Strict because a response mis-framed on a
 * reused connection would hand one client another's answer: anything that leaves the framing in
 * doubt (a bare LF, obs-fold, a Content-Length beside a Transfer-Encoding, two Content-Lengths, a
 * coding other than `chunked`, a malformed chunk size) is an error, and the caller drops the
 * connection. Error codes are llhttp's (`HPE_*`), the ones undici reported for the same faults.
 */
import { CRLF_CRLF, DIGITS, FIELD_LINE, MAX_HEAD_BYTES } from './h1-grammar.js';

/** Longest chunk-size line (size and extensions); real servers send a few bytes. */
export const MAX_CHUNK_LINE_BYTES = 4 * 1024;

/** A response that cannot be framed safely; `code` is llhttp's name for the fault. */
export class H1ParseError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Where the parser delivers a response. Calls may stop the parser (`stop()`) at any point. */
export interface ResponseSink {
  /** A response head; `status` < 200 is an interim (1xx) answer, the final one follows. */
  onResponseHead(status: number, reason: string, rawHeaders: string[]): void;
  /** A piece of the body, without chunk framing; a view of the buffer given to `execute`. */
  onResponseBody(chunk: Buffer): void;
  /** The message is complete; `trailers` flat (`[name, value, …]`), empty without any. */
  onResponseComplete(trailers: string[]): void;
}

const HEAD = 0;
const LENGTH = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const CHUNK_DATA_END = 4;
const TRAILERS = 5;
const UNTIL_CLOSE = 6;
const DONE = 7;

const NO_TRAILERS: string[] = [];

/** `HTTP/1.x SP 3DIGIT [SP reason]`; the reason is any visible bytes, spaces and tabs. */
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9]{2})(?: ([^\0-\x08\x0a-\x1f\x7f]*))?$/;
/** `1*HEXDIG [BWS ";" extension…]` without its CRLF. */
const CHUNK_SIZE_LINE = /^([0-9A-Fa-f]{1,13})(?:[ \t]*;[^\0-\x08\x0a-\x1f\x7f]*)?$/;
const KEEP_ALIVE_TIMEOUT = /(?:^|[,;\s])timeout\s*=\s*([0-9]{1,9})/i;

/**
 * Parses the responses of one connection, one at a time: `expect(head)` before each request's
 * answer, then `execute` for each buffer read and `finish` at end of stream.
 */
export class H1ResponseParser {
  #state = DONE;
  #head = false;
  #remaining = 0;
  /** Bytes of an incomplete head or trailer section, kept across reads. */
  #pending: Buffer | undefined;
  /** An incomplete chunk-size line. */
  #line = '';
  #trailers: string[] = NO_TRAILERS;
  #stopped = false;
  /** Whether the connection may carry another request once this response is complete. */
  keepAlive = false;
  /** The upstream's `Keep-Alive: timeout=<s>` hint, or -1. */
  keepAliveSeconds = -1;
  /** A 204 or 304 whose head announced a body (a nonzero Content-Length, or chunked) it must not have. */
  bodyDeclared = false;
  /** Bytes of the current response seen so far (0: the upstream has not answered yet). */
  bytesSeen = 0;

  constructor(private readonly sink: ResponseSink) {}

  /** Expects the answer to a new request; `head` for HEAD, whose answer has no body whatever it says. */
  expect(head: boolean): void {
    this.#state = HEAD;
    this.#head = head;
    this.#pending = undefined;
    this.#line = '';
    this.#trailers = NO_TRAILERS;
    this.keepAlive = false;
    this.keepAliveSeconds = -1;
    this.bodyDeclared = false;
    this.bytesSeen = 0;
  }

  /** Stops delivering: the rest of the current buffer is ignored. */
  stop(): void {
    this.#stopped = true;
  }

  /** True once the final response is complete. */
  get complete(): boolean {
    return this.#state === DONE;
  }

  /** True while the body runs until the connection closes (no Content-Length, not chunked). */
  get untilClose(): boolean {
    return this.#state === UNTIL_CLOSE;
  }

  /**
   * Parses `buf`; returns how many bytes belong to the current response: fewer than `buf.length`
   * when it completed early (what follows is not an answer to anything). Throws {@link H1ParseError}.
   */
  execute(buf: Buffer): number {
    let at = 0;
    this.bytesSeen += buf.length;
    while (at < buf.length && this.#state !== DONE && !this.#stopped) {
      switch (this.#state) {
        case HEAD:
          at = this.#readHead(buf, at);
          break;
        case LENGTH: {
          const n = Math.min(this.#remaining, buf.length - at);
          const piece = buf.subarray(at, at + n);
          at += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = DONE;
          this.sink.onResponseBody(piece);
          if (this.#state === DONE && !this.#stopped) this.sink.onResponseComplete(NO_TRAILERS);
          break;
        }
        case CHUNK_SIZE:
          at = this.#readChunkSize(buf, at);
          break;
        case CHUNK_DATA: {
          const n = Math.min(this.#remaining, buf.length - at);
          const piece = buf.subarray(at, at + n);
          at += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            this.#state = CHUNK_DATA_END;
            this.#remaining = 2;
          }
          this.sink.onResponseBody(piece);
          break;
        }
        case CHUNK_DATA_END: {
          // The CRLF after a chunk's data, possibly split across reads.
          const expected = this.#remaining === 2 ? 13 : 10;
          if (buf[at] !== expected) throw new H1ParseError('HPE_STRICT', 'a chunk is not followed by CRLF');
          at++;
          if (--this.#remaining === 0) this.#state = CHUNK_SIZE;
          break;
        }
        case TRAILERS:
          at = this.#readTrailers(buf, at);
          break;
        case UNTIL_CLOSE:
          this.sink.onResponseBody(at === 0 ? buf : buf.subarray(at));
          at = buf.length;
          break;
      }
    }
    if (this.#state === DONE) this.bytesSeen -= buf.length - at;
    return at;
  }

  /**
   * The connection ended. Completes a body that runs until close; throws when the response is
   * incomplete (the client must see a truncated answer, never a clean end).
   */
  finish(): void {
    if (this.#state === UNTIL_CLOSE) {
      this.#state = DONE;
      this.sink.onResponseComplete(NO_TRAILERS);
      return;
    }
    if (this.#state !== DONE) throw new H1ParseError('HPE_INVALID_EOF_STATE', 'the upstream closed the connection before its answer was complete');
  }

  #readHead(buf: Buffer, at: number): number {
    let data = buf;
    let start = at;
    let from = at;
    const pendingLength = this.#pending?.length ?? 0;
    if (this.#pending !== undefined) {
      data = Buffer.concat([this.#pending, buf.subarray(at)]);
      start = 0;
      from = Math.max(0, pendingLength - 3);
    }
    const end = data.indexOf(CRLF_CRLF, from);
    if (end === -1 || end - start > MAX_HEAD_BYTES) {
      if (data.length - start > MAX_HEAD_BYTES) throw new H1ParseError('HPE_HEADER_OVERFLOW', `the response head is longer than ${MAX_HEAD_BYTES} bytes`);
      // A copy: a view would keep the whole 64 KiB read buffer alive.
      this.#pending = Buffer.from(data.subarray(start));
      return buf.length;
    }
    // `end` indexes `data`: `buf` itself from `at` on, or the kept bytes followed by `buf` from `at` on.
    const consumed = this.#pending === undefined ? end + 4 : at + end + 4 - pendingLength;
    this.#pending = undefined;
    this.#parseHead(data.toString('latin1', start, end));
    return consumed;
  }

  #parseHead(text: string): void {
    const lines = text.split('\r\n');
    const status = STATUS_LINE.exec(lines[0] as string);
    if (status === null) throw new H1ParseError('HPE_INVALID_STATUS', 'the status line is not `HTTP/1.x <3 digits> <reason>`');
    const http11 = status[1] === '1';
    const code = Number(status[2]);
    const raw: string[] = [];
    let length = -1;
    let codings: string | undefined;
    let close = false;
    let keepAliveToken = false;
    let keepAliveSeconds = -1;
    for (let i = 1; i < lines.length; i++) {
      const field = FIELD_LINE.exec(lines[i] as string);
      if (field === null) throw new H1ParseError('HPE_INVALID_HEADER_TOKEN', `a header line is malformed (line ${i + 1} of the head)`);
      const name = field[1] as string;
      const value = field[2] as string;
      raw.push(name, value);
      switch (name.length) {
        case 14:
          if (name.toLowerCase() !== 'content-length') break;
          if (length !== -1) throw new H1ParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'the response has two Content-Length fields');
          if (!DIGITS.test(value)) throw new H1ParseError('HPE_INVALID_CONTENT_LENGTH', 'the Content-Length is not a number');
          length = Number(value);
          break;
        case 17:
          if (name.toLowerCase() === 'transfer-encoding') codings = codings === undefined ? value : `${codings},${value}`;
          break;
        case 10: {
          const lower = name.toLowerCase();
          if (lower === 'connection') {
            for (const token of value.split(',')) {
              const option = token.trim().toLowerCase();
              if (option === 'close') close = true;
              else if (option === 'keep-alive') keepAliveToken = true;
            }
          } else if (lower === 'keep-alive') {
            const hint = KEEP_ALIVE_TIMEOUT.exec(value);
            if (hint !== null) keepAliveSeconds = Number(hint[1]);
          }
          break;
        }
      }
    }
    if (code < 200) {
      if (code === 101) throw new H1ParseError('HPE_INVALID_STATUS', 'the upstream switched protocols without being asked to');
      this.sink.onResponseHead(code, status[3] ?? '', raw);
      return;
    }
    let chunked = false;
    if (codings !== undefined) {
      if (length !== -1) throw new H1ParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'the response has both Content-Length and Transfer-Encoding');
      // Only plain `chunked`: the body is relayed as it is decoded, so another coding would be lost
      // (and a coding list that does not end in chunked leaves the length to the connection's close).
      if (!http11 || codings.trim().toLowerCase() !== 'chunked') throw new H1ParseError('HPE_INVALID_TRANSFER_ENCODING', `the response's Transfer-Encoding is \`${codings}\`, not \`chunked\``);
      chunked = true;
    }
    const bodiless = this.#head || code === 204 || code === 304;
    this.bodyDeclared = !this.#head && bodiless && (chunked || length > 0);
    this.keepAlive = !close && (http11 || keepAliveToken) && (bodiless || chunked || length !== -1);
    this.keepAliveSeconds = keepAliveSeconds;
    if (bodiless || length === 0) this.#state = DONE;
    else if (chunked) this.#state = CHUNK_SIZE;
    else if (length > 0) {
      this.#state = LENGTH;
      this.#remaining = length;
    } else this.#state = UNTIL_CLOSE;
    this.sink.onResponseHead(code, status[3] ?? '', raw);
    if (this.#state === DONE && !this.#stopped) this.sink.onResponseComplete(NO_TRAILERS);
  }

  #readChunkSize(buf: Buffer, at: number): number {
    const lf = buf.indexOf(10, at);
    const end = lf === -1 ? buf.length : lf + 1;
    this.#line += buf.toString('latin1', at, end);
    if (lf === -1) {
      if (this.#line.length > MAX_CHUNK_LINE_BYTES) throw new H1ParseError('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'a chunk-size line is too long');
      return end;
    }
    const line = this.#line;
    this.#line = '';
    if (line.length > MAX_CHUNK_LINE_BYTES + 2 || line.charCodeAt(line.length - 2) !== 13) throw new H1ParseError('HPE_INVALID_CHUNK_SIZE', 'a chunk-size line is malformed');
    const size = CHUNK_SIZE_LINE.exec(line.slice(0, -2));
    if (size === null) throw new H1ParseError('HPE_INVALID_CHUNK_SIZE', 'a chunk size is not hexadecimal');
    const n = Number.parseInt(size[1] as string, 16);
    if (n === 0) this.#state = TRAILERS;
    else {
      this.#state = CHUNK_DATA;
      this.#remaining = n;
    }
    return end;
  }

  #readTrailers(buf: Buffer, at: number): number {
    const pendingLength = this.#pending?.length ?? 0;
    const data = this.#pending === undefined ? buf.subarray(at) : Buffer.concat([this.#pending, buf.subarray(at)]);
    // No trailer fields: the section is one empty line.
    if (data.length >= 2 && data[0] === 13 && data[1] === 10) {
      this.#pending = undefined;
      this.#state = DONE;
      this.sink.onResponseComplete(this.#trailers);
      return at + 2 - pendingLength;
    }
    const end = data.indexOf(CRLF_CRLF, Math.max(0, pendingLength - 3));
    if (end === -1 || end > MAX_HEAD_BYTES) {
      if (data.length > MAX_HEAD_BYTES) throw new H1ParseError('HPE_HEADER_OVERFLOW', `the trailer section is longer than ${MAX_HEAD_BYTES} bytes`);
      if (data.length >= 1 && data[0] !== 13) this.#checkTrailerStart(data);
      this.#pending = Buffer.from(data);
      return buf.length;
    }
    this.#pending = undefined;
    const trailers: string[] = [];
    for (const line of data.toString('latin1', 0, end).split('\r\n')) {
      const field = FIELD_LINE.exec(line);
      if (field === null) throw new H1ParseError('HPE_INVALID_HEADER_TOKEN', 'a trailer line is malformed');
      trailers.push(field[1] as string, field[2] as string);
    }
    this.#state = DONE;
    this.sink.onResponseComplete(trailers);
    return at + end + 4 - pendingLength;
  }

  /** A trailer section must start with a field name; rejects garbage early instead of buffering it. */
  #checkTrailerStart(data: Buffer): void {
    const first = data[0] as number;
    if (first <= 32 || first === 58 || first >= 127) throw new H1ParseError('HPE_INVALID_HEADER_TOKEN', 'a trailer line is malformed');
  }
}
