/**
 * devproxy's own HTTP/1.1 client for local `http:` upstreams (an app on 127.0.0.1): one
 * {@link H1Pool} per origin, keep-alive sockets reused one request at a time, driven through the
 * same `dispatch(options, handler)` shape as undici's Pool so the exchange does not care which it
 * talks to. It exists for speed and memory: it costs less CPU per request than undici, and a daemon
 * serving only local routes never loads undici and its WebAssembly parser (README "Performance").
 *
 * What it keeps from undici: raw response header names, order and repeats; the connect, headers and
 * body-idle timeouts and their `UND_ERR_*` codes (mapped by `upstream-errors.ts`); request bodies
 * streamed with back-pressure, by their Content-Length or chunked; a response that ends early or
 * is cut reaching the handler as an error, never a clean end. What it adds: a bodiless idempotent
 * request that meets a reused socket the upstream had closed is sent once more on another socket.
 * Responses are parsed strictly (`h1-response-parser.ts`); a connection whose framing is in doubt
 * is closed, never reused.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { DispatchControllerState } from './dispatch-controller.js';
import { DIGITS, INVALID_VALUE, TOKEN } from './h1-grammar.js';
import { H1ResponseParser, type ResponseSink } from './h1-response-parser.js';

/** Settings of one pool; all times in milliseconds. */
export interface H1PoolOptions {
  /** Most sockets open to the origin; requests beyond wait in order. */
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

/** How long an idle socket is kept when the upstream gives no `Keep-Alive: timeout` (undici's default). */
const KEEP_ALIVE_DEFAULT_MS = 4_000;
/** Taken off the upstream's own keep-alive timeout so devproxy closes first (undici's threshold). */
const KEEP_ALIVE_MARGIN_MS = 2_000;
/** Longest idle time whatever the upstream announces. */
const KEEP_ALIVE_MAX_MS = 600_000;
/** TCP keep-alive probes on upstream sockets start after this long (undici's default). */
const TCP_KEEP_ALIVE_DELAY_MS = 60_000;
/** Bounds of the interval at which deadlines are checked: a quarter of the shortest timeout. */
const TICK_MIN_MS = 10;
const TICK_MAX_MS = 1_000;

/** Methods whose body the upstream expects: sent with `content-length: 0` when there is none (as undici). */
const EXPECTS_PAYLOAD: ReadonlySet<string> = new Set(['PUT', 'POST', 'PATCH', 'QUERY', 'PROPFIND', 'PROPPATCH']);
/** Idempotent methods (RFC 9110 §9.2.2): sent again once, without a body, when a reused socket was stale. */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** A request target: visible ASCII only. */
const TARGET = /^[\x21-\x7e\x80-\xff]+$/;

/** The exchange reads `controller.rawHeaders`; this path builds no parsed header object. */
const NO_PARSED_HEADERS: IncomingHttpHeaders = Object.freeze({}) as IncomingHttpHeaders;

const kConnection = Symbol('devproxy.h1Connection');
const kRequest = Symbol('devproxy.h1Request');

type PooledSocket = Socket & { [kConnection]?: H1Connection };
type RequestBody = Readable & { [kRequest]?: H1Request };

/** Deadline kinds of a connection. */
const NONE = 0;
const CONNECT = 1;
const HEADERS = 2;
const BODY = 3;
const IDLE = 4;

function upstreamError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Flat trailer fields as the parsed object the handler takes (lower-case names, repeats as arrays). */
function trailerObject(flat: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const name = (flat[i] as string).toLowerCase();
    const value = flat[i + 1] as string;
    const prior = out[name];
    if (prior === undefined) out[name] = value;
    else if (Array.isArray(prior)) prior.push(value);
    else out[name] = [prior, value];
  }
  return out;
}

/**
 * The request head as written upstream, and the body's Content-Length (-1: chunked or none); an
 * error when a field, the method or the target would break the head's lines (defence in depth:
 * node's parsers already refuse such client input).
 */
function requestHead(method: string, path: string, headers: readonly string[], hasBody: boolean): { head: string; length: number } | Error {
  if (!TOKEN.test(method) || !TARGET.test(path)) return upstreamError('UND_ERR_INVALID_ARG', 'the request target or method cannot be written in HTTP/1.1');
  let head = `${method} ${path} HTTP/1.1\r\n`;
  let length = -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const value = headers[i + 1] as string;
    if (!TOKEN.test(name) || INVALID_VALUE.test(value)) return upstreamError('UND_ERR_INVALID_ARG', `the request header ${JSON.stringify(name)} cannot be written in HTTP/1.1`);
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      // One length, in digits: the body is framed by it.
      if (length !== -1 || !DIGITS.test(value)) return upstreamError('UND_ERR_INVALID_ARG', 'the request has a malformed or repeated Content-Length');
      length = Number(value);
    }
    head += `${name}: ${value}\r\n`;
  }
  if (hasBody) {
    if (length === -1) head += 'transfer-encoding: chunked\r\n';
  } else if (length > 0) {
    // A length and no body to fill it: the next request's bytes would become this one's body.
    return upstreamError('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'the request declares a Content-Length but has no body');
  } else if (length === -1 && EXPECTS_PAYLOAD.has(method)) head += 'content-length: 0\r\n';
  return { head: `${head}\r\n`, length };
}

/**
 * One request through the pool, and the controller its handler holds: `pause`/`resume` the
 * response, `abort` the request.
 */
class H1Request extends DispatchControllerState {
  rawHeaders: string[] | null = null;
  /** The connection carrying it; undefined while it waits in the queue. */
  connection: H1Connection | undefined;
  /** Bytes of body sent so far. */
  sent = 0;
  /** The request line and header fields, ready to write. */
  head = '';
  /** The Content-Length announced, or -1 for a chunked body. */
  length = -1;
  /** The request (head and body) is written in full. */
  written = false;
  /** Sent once more after a stale socket. */
  retried = false;
  /** Completed, failed or aborted: no callback follows. */
  done = false;
  /** onResponseError was called: it is never called twice. */
  #errorReported = false;

  constructor(
    readonly pool: H1Pool,
    readonly method: string,
    readonly body: RequestBody | null,
    readonly handler: Dispatcher.DispatchHandler,
  ) {
    super();
  }

  protected override ended(): boolean {
    return this.done;
  }

  protected onAbort(reason: Error): void {
    const connection = this.connection;
    if (connection === undefined) this.pool.unqueue(this);
    else connection.drop();
    this.fail(reason);
  }

  protected onPause(): void {
    this.connection?.pause();
  }

  protected onResume(): void {
    this.connection?.resume();
  }

  /** Ends the request with `error` (the handler's last callback). */
  fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    this.connection = undefined;
    this.detachBody(false);
    this.#errorReported = true;
    this.call(this.handler.onResponseError, error);
  }

  /**
   * Runs one handler callback. Every callback runs from a socket, stream or timer event, where a
   * throw would crash the daemon: a throw ends the request instead, reported through
   * onResponseError as undici does (once; a throw from onResponseError itself goes nowhere).
   */
  call<A extends unknown[]>(callback: ((controller: H1Request, ...args: A) => void) | undefined, ...args: A): void {
    if (callback === undefined) return;
    try {
      callback.call(this.handler, this, ...args);
    } catch (error) {
      if (!this.done) this.abort(error as Error);
      else if (!this.#errorReported) {
        this.#errorReported = true;
        this.call(this.handler.onResponseError, error as Error);
      }
    }
  }

  /** May go out once more: nothing of the answer came, no body to replay, not sent twice already. */
  retryable(): boolean {
    return !this.retried && !this.aborted && this.body === null && IDEMPOTENT.has(this.method);
  }

  /** Stops reading the client's body; `drain` lets the rest flow to nowhere (an answer came early). */
  detachBody(drain: boolean): void {
    const body = this.body;
    if (body === null || body[kRequest] !== this) return;
    body[kRequest] = undefined;
    body.off('data', onBodyData).off('end', onBodyEnd).off('error', onBodyError).off('close', onBodyClose);
    if (drain) body.resume();
  }

  /** The client's body ended: finish its framing. */
  bodyEnded(): void {
    const connection = this.connection as H1Connection;
    this.detachBody(false);
    if (this.length !== -1 && this.sent !== this.length) {
      connection.fail(upstreamError('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'the request body is shorter than its Content-Length'));
      return;
    }
    if (this.length === -1) connection.socket.write('0\r\n\r\n', 'latin1');
    this.written = true;
    connection.refreshHeadersDeadline();
  }
}

function onBodyData(this: RequestBody, chunk: Buffer): void {
  const request = this[kRequest] as H1Request;
  const connection = request.connection as H1Connection;
  request.sent += chunk.length;
  if (request.length !== -1 && request.sent > request.length) {
    connection.fail(upstreamError('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'the request body is longer than its Content-Length'));
    return;
  }
  const socket = connection.socket;
  // An empty chunk would write `0\r\n\r\n`, the end of a chunked body.
  if (chunk.length === 0) return;
  let flowing: boolean;
  if (request.length === -1) {
    socket.cork();
    socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    flowing = socket.write('\r\n', 'latin1');
    socket.uncork();
  } else flowing = socket.write(chunk);
  if (!flowing) this.pause();
  connection.refreshHeadersDeadline();
}

function onBodyEnd(this: RequestBody): void {
  (this[kRequest] as H1Request).bodyEnded();
}

function onBodyError(this: RequestBody, error: Error): void {
  const request = this[kRequest] as H1Request;
  request.connection?.fail(error);
}

function onBodyClose(this: RequestBody): void {
  // A body that closes before its end: the client went away mid-upload.
  const request = this[kRequest];
  if (request !== undefined && !this.readableEnded) request.abort(upstreamError('UND_ERR_ABORTED', 'the request body was cut'));
}

function onSocketConnect(this: PooledSocket): void {
  this[kConnection]?.connected();
}

function onSocketData(this: PooledSocket, chunk: Buffer): void {
  this[kConnection]?.read(chunk);
}

function onSocketEnd(this: PooledSocket): void {
  this[kConnection]?.ended();
}

function onSocketError(this: PooledSocket, error: Error): void {
  this[kConnection]?.failed(error);
}

function onSocketClose(this: PooledSocket): void {
  this[kConnection]?.closed();
}

function onSocketDrain(this: PooledSocket): void {
  const body = this[kConnection]?.request?.body;
  if (body !== null && body !== undefined && body[kRequest] !== undefined) body.resume();
}

/** One socket to the upstream and its parser; carries one request at a time. */
class H1Connection implements ResponseSink {
  readonly socket: PooledSocket;
  readonly #parser = new H1ResponseParser(this);
  request: H1Request | undefined;
  /** When the current deadline passes (ms since the epoch) and what it guards. */
  deadline = 0;
  deadlineKind = NONE;
  #connected = false;
  /** Answers served on this socket: one or more makes it a reused socket. */
  #served = 0;
  #trailers: string[] | undefined;
  /** How long this socket may idle, from the last answer's keep-alive hint. */
  #keepAliveMs = KEEP_ALIVE_DEFAULT_MS;

  constructor(
    readonly pool: H1Pool,
    host: string,
    port: number,
  ) {
    const socket: PooledSocket = connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: TCP_KEEP_ALIVE_DELAY_MS });
    socket[kConnection] = this;
    socket.on('connect', onSocketConnect).on('data', onSocketData).on('end', onSocketEnd).on('error', onSocketError).on('close', onSocketClose).on('drain', onSocketDrain);
    this.socket = socket;
    this.deadlineKind = CONNECT;
    this.deadline = Date.now() + pool.options.connectTimeoutMs;
  }

  /** Writes `request` (head now, body as it comes). */
  send(request: H1Request): void {
    this.request = request;
    request.connection = this;
    this.#trailers = undefined;
    this.#parser.expect(request.method === 'HEAD');
    this.socket.ref();
    // Paused while it waited for a socket.
    if (request.paused) this.pause();
    if (this.#connected) this.refreshHeadersDeadline();
    const body = request.body;
    this.socket.write(request.head, 'latin1');
    if (body === null) {
      request.written = true;
      return;
    }
    body[kRequest] = request;
    body.on('data', onBodyData).on('end', onBodyEnd).on('error', onBodyError).on('close', onBodyClose);
    body.resume();
  }

  connected(): void {
    this.#connected = true;
    if (this.request !== undefined) this.refreshHeadersDeadline();
  }

  /** Restarts the wait for the answer's head (each body write counts as progress, as in undici). */
  refreshHeadersDeadline(): void {
    if (!this.#connected || this.deadlineKind === BODY) return;
    this.deadlineKind = HEADERS;
    this.deadline = Date.now() + this.pool.options.headersTimeoutMs;
  }

  read(chunk: Buffer): void {
    const request = this.request;
    if (request === undefined) {
      // Bytes nobody asked for: this socket's framing can no longer be trusted.
      this.socket.destroy();
      return;
    }
    let used: number;
    try {
      used = this.#parser.execute(chunk);
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    if (this.request === request && this.#trailers !== undefined) this.#complete(used < chunk.length);
  }

  /** The upstream closed its side. */
  ended(): void {
    const request = this.request;
    if (request === undefined) {
      this.socket.destroy();
      return;
    }
    try {
      this.#parser.finish();
    } catch {
      this.#lost(upstreamError('UND_ERR_SOCKET', 'other side closed'));
      return;
    }
    if (this.request === request && this.#trailers !== undefined) this.#complete(false);
  }

  failed(error: Error): void {
    if (this.request === undefined) return;
    this.#lost(error);
  }

  closed(): void {
    this.deadlineKind = NONE;
    if (this.request !== undefined) this.#lost(upstreamError('UND_ERR_SOCKET', 'closed'));
    this.pool.removed(this);
  }

  /** The socket went away under a request: sent again when it was only a stale keep-alive socket. */
  #lost(error: Error): void {
    const request = this.request as H1Request;
    if (this.#served > 0 && this.#parser.bytesSeen === 0 && request.retryable()) {
      this.request = undefined;
      request.connection = undefined;
      request.retried = true;
      this.socket.destroy();
      this.pool.assign(request);
      return;
    }
    this.fail(error);
  }

  /** Fails the current request and closes the socket. */
  fail(error: Error): void {
    const request = this.request;
    this.drop();
    request?.fail(error);
  }

  /** Closes the socket without a word to the request (aborted or failed by the caller). */
  drop(): void {
    const request = this.request;
    this.request = undefined;
    this.#parser.stop();
    request?.detachBody(false);
    this.deadlineKind = NONE;
    this.socket.destroy();
  }

  pause(): void {
    this.socket.pause();
    // A paused answer waits for the client, not for the upstream: no body deadline (as undici).
    if (this.deadlineKind === BODY) this.deadline = Number.POSITIVE_INFINITY;
  }

  resume(): void {
    this.socket.resume();
    if (this.deadlineKind === BODY) this.deadline = Date.now() + this.pool.options.bodyTimeoutMs;
  }

  onResponseHead(status: number, reason: string, rawHeaders: string[]): void {
    const request = this.request as H1Request;
    if (status === 100) {
      // An unasked 100 Continue (devproxy never sends Expect): undici fails it the same way.
      this.fail(upstreamError('UND_ERR_SOCKET', 'bad response'));
      return;
    }
    request.rawHeaders = rawHeaders;
    if (status >= 200) {
      this.deadlineKind = BODY;
      this.deadline = request.paused ? Number.POSITIVE_INFINITY : Date.now() + this.pool.options.bodyTimeoutMs;
      const hint = this.#parser.keepAliveSeconds;
      this.#keepAliveMs = hint < 0 ? KEEP_ALIVE_DEFAULT_MS : Math.min(hint * 1000 - KEEP_ALIVE_MARGIN_MS, KEEP_ALIVE_MAX_MS);
    }
    request.call(request.handler.onResponseStart, status, NO_PARSED_HEADERS, reason);
  }

  onResponseBody(chunk: Buffer): void {
    const request = this.request as H1Request;
    if (this.deadline !== Number.POSITIVE_INFINITY) this.deadline = Date.now() + this.pool.options.bodyTimeoutMs;
    request.call(request.handler.onResponseData, chunk);
  }

  onResponseComplete(trailers: string[]): void {
    this.#trailers = trailers;
  }

  /** The answer is complete: the socket goes back to the pool if its framing allows, the handler ends. */
  #complete(extraBytes: boolean): void {
    const request = this.request as H1Request;
    const trailers = this.#trailers as string[];
    this.request = undefined;
    request.connection = undefined;
    request.done = true;
    this.#served++;
    this.deadlineKind = NONE;
    // An answer before the whole request was sent (a 413 to an upload): the rest of the client's body
    // is read and dropped, and the socket, mid-request, cannot carry another one.
    if (!request.written) request.detachBody(true);
    if (request.paused) this.socket.resume();
    // A 204 or 304 that announced a body may still send it, which the next request would read as
    // its answer: that socket is not reused.
    if (this.#parser.keepAlive && !this.#parser.bodyDeclared && request.written && !extraBytes && this.#keepAliveMs > 0) this.pool.release(this);
    else this.socket.destroy();
    request.call(request.handler.onResponseEnd, trailers.length === 0 ? NO_PARSED_HEADERS : trailerObject(trailers));
  }

  /** Parks the socket: no request, closed after its keep-alive time. */
  idle(): void {
    this.deadlineKind = IDLE;
    this.deadline = Date.now() + this.#keepAliveMs;
    this.socket.unref();
  }

  /** Acts on a passed deadline. */
  expire(now: number): void {
    if (this.deadlineKind === NONE || now < this.deadline) return;
    const kind = this.deadlineKind;
    if (kind === IDLE) this.socket.destroy();
    else if (kind === CONNECT) this.fail(upstreamError('UND_ERR_CONNECT_TIMEOUT', 'connect timeout'));
    else if (kind === HEADERS) this.fail(upstreamError('UND_ERR_HEADERS_TIMEOUT', 'headers timeout'));
    else this.fail(upstreamError('UND_ERR_BODY_TIMEOUT', 'body timeout'));
  }
}

/**
 * The sockets to one local origin (`http://127.0.0.1:<port>`): at most `connections` of them,
 * idle ones reused last-in first-out, requests beyond the bound queued in order.
 */
export class H1Pool {
  readonly #host: string;
  readonly #port: number;
  readonly #connections = new Set<H1Connection>();
  readonly #idle: H1Connection[] = [];
  readonly #queue: H1Request[] = [];
  readonly #tickMs: number;
  #ticker: NodeJS.Timeout | undefined;
  #closing = false;
  /** Settled when the last socket closes: every close() and destroy() waits on it. */
  #drained: Promise<void> | undefined;
  #onDrained: (() => void) | undefined;

  constructor(
    origin: string,
    readonly options: H1PoolOptions,
  ) {
    const url = new URL(origin);
    this.#host = url.hostname.replace(/^\[|\]$/g, '');
    this.#port = Number(url.port || 80);
    const shortest = Math.min(options.connectTimeoutMs, options.headersTimeoutMs, options.bodyTimeoutMs);
    this.#tickMs = Math.max(TICK_MIN_MS, Math.min(TICK_MAX_MS, Math.floor(shortest / 4)));
  }

  /** Sends a request and reports its answer to `handler` (undici's dispatch handler API). */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const body = (options.body ?? null) as RequestBody | null;
    const request = new H1Request(this, options.method, body, handler);
    if (this.#closing) {
      request.fail(upstreamError('UND_ERR_CLOSED', 'the upstream pool is closed'));
      return false;
    }
    const head = requestHead(options.method, options.path, (options.headers ?? []) as string[], body !== null);
    if (head instanceof Error) {
      request.fail(head);
      return false;
    }
    request.head = head.head;
    request.length = head.length;
    request.call(handler.onRequestStart, {});
    if (!request.done) this.assign(request);
    return true;
  }

  /** Gives `request` a socket: an idle one, a new one within the bound, or a place in the queue. */
  assign(request: H1Request): void {
    let idle = this.#idle.pop();
    // A socket closed this turn (idle timeout, the upstream's FIN) stays listed until its `close`
    // event: one tick can close many, so each is skipped here, or a retry would meet one again.
    while (idle !== undefined && idle.socket.destroyed) idle = this.#idle.pop();
    if (idle !== undefined) idle.send(request);
    else if (this.#connections.size < this.options.connections) this.#open().send(request);
    else this.#queue.push(request);
  }

  /** Takes an aborted request out of the queue. */
  unqueue(request: H1Request): void {
    const at = this.#queue.indexOf(request);
    if (at !== -1) this.#queue.splice(at, 1);
  }

  /** A socket finished its request and may carry another one. */
  release(connection: H1Connection): void {
    const next = this.#queue.shift();
    if (next !== undefined) connection.send(next);
    else if (this.#closing) connection.socket.destroy();
    else {
      connection.idle();
      this.#idle.push(connection);
    }
  }

  /** A socket closed. */
  removed(connection: H1Connection): void {
    if (!this.#connections.delete(connection)) return;
    const at = this.#idle.indexOf(connection);
    if (at !== -1) this.#idle.splice(at, 1);
    const next = this.#queue.shift();
    if (next !== undefined) this.#open().send(next);
    if (this.#connections.size === 0) {
      clearInterval(this.#ticker);
      this.#ticker = undefined;
      this.#onDrained?.();
      this.#onDrained = undefined;
      this.#drained = undefined;
    }
  }

  /** Lets requests under way (and queued) finish, then resolves; idle sockets close at once. */
  close(): Promise<void> {
    this.#closing = true;
    for (const connection of this.#idle.splice(0)) connection.socket.destroy();
    return this.#whenDrained();
  }

  /** Closes every socket now; requests under way fail. */
  destroy(): Promise<void> {
    this.#closing = true;
    const closed = this.#whenDrained();
    for (const request of this.#queue.splice(0)) request.fail(upstreamError('UND_ERR_DESTROYED', 'the upstream pool was destroyed'));
    for (const connection of this.#connections) connection.fail(upstreamError('UND_ERR_DESTROYED', 'the upstream pool was destroyed'));
    return closed;
  }

  #whenDrained(): Promise<void> {
    if (this.#connections.size === 0) return Promise.resolve();
    this.#drained ??= new Promise<void>((resolve) => (this.#onDrained = resolve));
    return this.#drained;
  }

  #open(): H1Connection {
    const connection = new H1Connection(this, this.#host, this.#port);
    this.#connections.add(connection);
    if (this.#ticker === undefined) {
      this.#ticker = setInterval(expireAll, this.#tickMs, this.#connections);
      this.#ticker.unref();
    }
    return connection;
  }
}

function expireAll(connections: ReadonlySet<H1Connection>): void {
  const now = Date.now();
  for (const connection of connections) connection.expire(now);
}
