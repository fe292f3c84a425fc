/**
 * The h2 front of the HTTPS listener: a bodiless h2 request (GET, HEAD, DELETE… without DATA
 * frames) is served on node:http2's core stream API through two light objects, {@link H2Request}
 * and {@link H2Response}, which carry exactly what the shared handler reads and writes. node's
 * compat pair (`Http2ServerRequest`/`Http2ServerResponse`) builds two streams per h2 stream, with
 * eight listeners on it, and re-validates every header it is handed; in a minimal h2 proxy
 * measured side by side it cost ~14 % of the CPU per request.
 *
 * Streams with a request body, `Expect: 100-continue` and CONNECT (WebSockets over RFC 8441) keep
 * node's compat objects ({@link takesCoreStream}): their body streaming, back-pressure, long-body
 * pacing and 100-continue answers are node's, and they are not the hot path.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Http2SecureServer, IncomingHttpHeaders as H2IncomingHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { h2HeaderObject } from './forward-headers.js';
import type { AnswerWatcher, ProxyHandler } from './types.js';

const kResponse = Symbol('devproxy.h2Response');

type FrontStream = ServerHttp2Stream & { [kResponse]?: H2Response };

/** node's compat 'stream' listener (`onServerStream` bound to its server): makes the compat pair and emits 'request' or 'connect'. */
type CompatStreamListener = (stream: ServerHttp2Stream, headers: H2IncomingHeaders, flags: number, rawHeaders: string[]) => void;

/**
 * Serves the h2 streams of `server` (made with a 'request' listener, which makes node add its
 * compat 'stream' listener) through the core front, and hands the streams the front does not take
 * to that compat listener. Throws when node's compat listener is not the one 'stream' listener,
 * rather than serving every stream twice.
 */
export function serveH2Streams(server: Http2SecureServer, handler: ProxyHandler): void {
  const listeners = server.listeners('stream');
  if (listeners.length !== 1) throw new Error(`expected node's compat 'stream' listener alone on the h2 server, found ${listeners.length}`);
  const compat = listeners[0] as CompatStreamListener;
  server.removeListener('stream', compat);
  server.on('stream', (stream: ServerHttp2Stream, headers: H2IncomingHeaders, flags: number, rawHeaders: string[]) => {
    if (!takesCoreStream(stream, headers)) {
      compat.call(server, stream, headers, flags, rawHeaders);
      return;
    }
    // Before the handler runs, a reset may destroy the stream with an error: without a listener
    // that 'error' would be thrown.
    stream.on('error', ignoreStreamError);
    // A rapid-reset client sends HEADERS and RST_STREAM together: node reads both before this
    // turn ends, so waiting one turn lets a reset stream cost nothing upstream.
    setImmediate(serveCoreStream, handler, stream, headers, rawHeaders);
  });
}

function serveCoreStream(handler: ProxyHandler, stream: ServerHttp2Stream, headers: H2IncomingHeaders, rawHeaders: string[]): void {
  if (!stream.destroyed) handler.handleRequest(new H2Request(stream, headers, rawHeaders), new H2Response(stream));
}

/** True when the stream is served by the core front; false sends it to node's compat objects. */
export function takesCoreStream(stream: ServerHttp2Stream, headers: H2IncomingHeaders): boolean {
  return stream.endAfterHeaders && headers[':method'] !== 'CONNECT' && headers.expect === undefined;
}

/** A bodiless h2 request as the shared handler reads it (the members of node's compat request it uses). */
export class H2Request {
  readonly httpVersionMajor = 2;
  readonly httpVersionMinor = 0;
  readonly httpVersion = '2.0';
  readonly method: string;
  /** The `:path`, as node's compat request gives it. */
  readonly url: string;

  constructor(
    readonly stream: ServerHttp2Stream,
    /** The header object node parsed, pseudo-headers included (the compat request's `headers`). */
    readonly headers: IncomingHttpHeaders,
    readonly rawHeaders: string[],
  ) {
    this.method = headers[':method'] as string;
    this.url = headers[':path'] as string;
  }

  /** The session's socket (a proxy node makes of the TLS socket); read once per session. */
  get socket(): Socket | TLSSocket {
    return this.stream.session?.socket as Socket | TLSSocket;
  }

  /** Nothing to drain: the request ended with its headers. */
  resume(): this {
    return this;
  }
}

function ignoreStreamError(): void {
  // A reset or a failed write destroys the stream with an error; 'close' tells the exchange.
}

function onStreamClose(this: FrontStream): void {
  this[kResponse]?.watcher?.clientClosed();
}

function onStreamDrain(this: FrontStream): void {
  this[kResponse]?.watcher?.clientDrained();
}

function onWantTrailers(this: FrontStream): void {
  this.sendTrailers(this[kResponse]?.trailers ?? {});
}

/**
 * The answer to an {@link H2Request}, written on the stream itself: one `respond` with the
 * headers, the body, END_STREAM on the last DATA frame (or after trailers when the answer may
 * carry them). Its {@link watcher} hears when the stream closes (answered or reset) and when it
 * drains after a `write` that returned false.
 */
export class H2Response {
  statusCode = 200;
  /** Trailers to send once the body ended (`addTrailers`), when the answer waits for them. */
  trailers: OutgoingHttpHeaders | undefined;
  /** Told when the stream drains or closes (the exchange writing this answer). */
  watcher: AnswerWatcher | undefined = undefined;
  #awaitsDrain = false;

  constructor(readonly stream: ServerHttp2Stream) {
    (stream as FrontStream)[kResponse] = this;
    // 'close' comes once: a plain listener spares the once-wrapper node makes for every stream.
    stream.on('close', onStreamClose);
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  /**
   * Starts the answer with an h2 header object; `waitForTrailers` holds END_STREAM back until
   * the trailers are sent. A stream already gone is left alone.
   */
  respond(status: number, headers: OutgoingHttpHeaders, waitForTrailers: boolean): void {
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    this.statusCode = status;
    if (waitForTrailers) stream.once('wantTrailers', onWantTrailers);
    stream.respond(headers, { waitForTrailers });
  }

  /** Starts the answer with flat header pairs (devproxy's own pages, already lower-case and valid). */
  writeHead(status: number, flat: readonly string[]): this {
    this.respond(status, h2HeaderObject(flat, status), false);
    return this;
  }

  /** Writes a body chunk; false when the client is full ('drain' follows). A body after END_STREAM (HEAD, 204, 304) is dropped. */
  write(chunk: Buffer | string): boolean {
    const stream = this.stream;
    if (stream.writableEnded || stream.destroyed) return true;
    if (stream.write(chunk)) return true;
    if (!this.#awaitsDrain) {
      this.#awaitsDrain = true;
      stream.on('drain', onStreamDrain);
    }
    return false;
  }

  addTrailers(trailers: IncomingHttpHeaders): void {
    this.trailers = trailers as OutgoingHttpHeaders;
  }

  /** Ends the answer (a 200 without headers if none were sent, as node's compat response); the signatures are the compat response's. */
  end(callback?: () => void): this;
  end(data: string | Uint8Array, callback?: () => void): this;
  end(data: string | Uint8Array, encoding: BufferEncoding, callback?: () => void): this;
  end(data?: string | Uint8Array | (() => void), encoding?: BufferEncoding | (() => void), callback?: () => void): this {
    const stream = this.stream;
    if (typeof data === 'function') [callback, data] = [data, undefined];
    if (typeof encoding === 'function') [callback, encoding] = [encoding, undefined];
    if (stream.destroyed) return this;
    if (!stream.headersSent) this.respond(this.statusCode, { ':status': this.statusCode }, false);
    if (stream.writableEnded) {
      callback?.();
      return this;
    }
    if (data === undefined) stream.end(callback);
    else if (encoding === undefined) stream.end(data, callback);
    else stream.end(data, encoding, callback);
    return this;
  }

  /** Resets the stream (an answer cut after its headers). */
  destroy(): this {
    this.stream.destroy();
    return this;
  }
}
