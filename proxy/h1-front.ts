/**
 * devproxy's own server side of plain HTTP/1.1: it takes each connection of the plain-HTTP
 * listener before node:http does and serves, itself, the requests that are most of a proxy's work
 * (a bodiless `HTTP/1.1` request whose whole head arrived in one read, `h1-request-head.ts`),
 * with light request and response objects the shared handler drives like node's. node:http's own
 * per-request machinery (its parser binding, IncomingMessage and ServerResponse streams, their
 * events and ticks) cost more CPU than the rest of the proxy; this path does not pay it.
 *
 * Anything else — a body, an upgrade, `Expect`, HTTP/1.0, a head split over reads, pipelined
 * requests, a head node could read otherwise — hands the connection to node:http with the bytes
 * read so far put back, and node serves it from then on as it always did: its parser, limits,
 * timeouts and error answers stay the reference. The answers written here are the ones node's
 * ServerResponse writes for the same calls (status line, `Date`, `Connection: keep-alive`,
 * `Keep-Alive`, chunked framing when there is no length), so a client cannot tell the paths apart.
 */
import { STATUS_CODES, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { CRLF_CRLF, INVALID_VALUE, MAX_HEAD_BYTES, TOKEN } from './h1-grammar.js';
import { parseServedHead, type ServedHead } from './h1-request-head.js';
import type { AnswerWatcher, ProxyHandler } from './types.js';

/** A request the front serves: what the handler reads of node's IncomingMessage. It has no body. */
export class FrontRequest {
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  readonly httpVersion = '1.1';
  readonly complete = true;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];

  constructor(
    readonly socket: Socket,
    head: ServedHead,
  ) {
    this.method = head.method;
    this.url = head.url;
    this.headers = head.headers;
    this.rawHeaders = head.rawHeaders;
  }

  /** There is no body to drain. */
  resume(): this {
    return this;
  }
}

/** `Transfer-Encoding` values that frame the answer in chunks (node's test). */
const CHUNKED_CODING = /(?:^|\W)chunked(?:$|\W)/i;
const CONNECTION_CLOSE = /(?:^|\W)close(?:$|\W)/i;

let dateSecond = -1;
let dateValue = '';

/** The `Date` of an answer: computed at most once a second, as node does. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(now).toUTCString();
  }
  return dateValue;
}

function flushResponse(response: FrontResponse): void {
  response.flush();
}

/** Most body bytes joined to the head and framing in one write; a bigger piece is written as it is. */
const JOINED_BODY_BYTES = 16 * 1024;

/** An invalid header, as node's writeHead/addTrailers throw it. */
function headerError(code: 'ERR_INVALID_HTTP_TOKEN' | 'ERR_INVALID_CHAR', name: string): TypeError {
  const what = code === 'ERR_INVALID_CHAR' ? `Invalid character in header content ["${name}"]` : `Header name must be a valid HTTP token ["${name}"]`;
  return Object.assign(new TypeError(what), { code });
}

/**
 * The answer to a {@link FrontRequest}: the part of node's ServerResponse the handler uses
 * (`writeHead` with a flat header list, `write`, `end`, `addTrailers`, `destroy`, `headersSent`,
 * `destroyed`), writing the same bytes node would. Its {@link watcher} hears what node's `drain`
 * and `close` events tell: the client's buffer drained, the client went away before the answer
 * was complete.
 */
export class FrontResponse {
  statusCode = 200;
  headersSent = false;
  destroyed = false;
  /** Told when the client drains or goes away (the exchange writing this answer). */
  watcher: AnswerWatcher | undefined = undefined;
  /** Latin1 text not yet written: the head until the first write, chunk framing, small pieces of body. */
  #unsent = '';
  #flushQueued = false;
  #hasBody: boolean;
  #chunked = false;
  #closeAfter = false;
  #trailer = '';
  #finished = false;

  constructor(
    private readonly connection: FrontConnection,
    method: string,
  ) {
    this.#hasBody = method !== 'HEAD';
  }

  writeHead(statusCode: number, headers: readonly string[] = []): this {
    if (this.headersSent) throw Object.assign(new Error('Cannot write headers after they are sent to the client'), { code: 'ERR_HTTP_HEADERS_SENT' });
    const status = statusCode | 0;
    if (status < 100 || status > 999) throw Object.assign(new RangeError(`Invalid status code: ${statusCode}`), { code: 'ERR_HTTP_INVALID_STATUS_CODE' });
    this.statusCode = status;
    if (status === 204 || status === 304 || status < 200) this.#hasBody = false;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    let length = false;
    let coding = false;
    let date = false;
    let connection = false;
    let keepAliveField = false;
    let trailerField = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      const value = headers[i + 1] as string;
      if (!TOKEN.test(name)) throw headerError('ERR_INVALID_HTTP_TOKEN', name);
      if (INVALID_VALUE.test(value)) throw headerError('ERR_INVALID_CHAR', name);
      head += `${name}: ${value}\r\n`;
      if (name.length < 4 || name.length > 17) continue;
      switch (name.toLowerCase()) {
        case 'content-length':
          length = true;
          break;
        case 'transfer-encoding':
          coding = true;
          if (CHUNKED_CODING.test(value)) this.#chunked = true;
          break;
        case 'date':
          date = true;
          break;
        case 'connection':
          connection = true;
          if (CONNECTION_CLOSE.test(value)) this.#closeAfter = true;
          break;
        case 'keep-alive':
          keepAliveField = true;
          break;
        case 'trailer':
          trailerField = true;
          break;
      }
    }
    if (!date) head += `Date: ${httpDate()}\r\n`;
    // node's rule: a chunked 204/304 sends no zero chunk and closes the connection instead.
    if (this.#chunked && (status === 204 || status === 304)) {
      this.#chunked = false;
      this.#closeAfter = true;
    }
    if (!connection) {
      if (this.#closeAfter) head += 'Connection: close\r\n';
      else {
        head += 'Connection: keep-alive\r\n';
        if (!keepAliveField) head += this.connection.keepAliveField;
      }
    }
    if (!length && !coding && this.#hasBody) {
      head += 'Transfer-Encoding: chunked\r\n';
      this.#chunked = true;
    }
    if (trailerField && !this.#chunked) throw Object.assign(new Error('Trailers are invalid with this transfer encoding'), { code: 'ERR_HTTP_TRAILER_INVALID' });
    this.#unsent = `${head}\r\n`;
    this.headersSent = true;
    return this;
  }

  /** Writes a piece of the body; false when the client's buffer is full (wait for `drain`). */
  write(chunk: Buffer | string): boolean {
    if (this.#finished || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (!this.#hasBody) return true;
    const fits = this.#add(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (this.#unsent !== '' && !this.#flushQueued) {
      this.#flushQueued = true;
      process.nextTick(flushResponse, this);
    }
    return fits;
  }

  /**
   * Adds a piece of the body to what goes out. A small piece joins the unsent head and framing
   * (latin1 text keeps every byte), so a small answer leaves in one write, the one syscall it
   * needs; a bigger one is written at once, behind the text.
   */
  #add(chunk: Buffer): boolean {
    if (this.#chunked) {
      if (chunk.length === 0) return true;
      this.#unsent += `${chunk.length.toString(16)}\r\n`;
    }
    if (this.#unsent.length + chunk.length <= JOINED_BODY_BYTES) {
      this.#unsent += chunk.toString('latin1');
      if (this.#chunked) this.#unsent += '\r\n';
      // Full once an earlier write found the client's buffer full, until it drains.
      return !this.connection.socket.writableNeedDrain;
    }
    const socket = this.connection.socket;
    socket.cork();
    if (this.#unsent !== '') socket.write(this.#unsent, 'latin1');
    this.#unsent = this.#chunked ? '\r\n' : '';
    const fits = socket.write(chunk);
    socket.uncork();
    return fits;
  }

  /** Writes what is unsent (the end of a tick in which the answer did not end). */
  flush(): void {
    this.#flushQueued = false;
    if (this.#unsent === '' || this.#finished || this.destroyed) return;
    this.connection.socket.write(this.#unsent, 'latin1');
    this.#unsent = '';
  }

  /** Ends the answer, with `chunk` as its last piece. */
  end(chunk?: Buffer | string): this {
    if (this.#finished) return this;
    if (this.destroyed) {
      this.#finished = true;
      return this;
    }
    if (!this.headersSent) this.writeHead(this.statusCode);
    if (chunk !== undefined && this.#hasBody) this.#add(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    let last = this.#unsent;
    this.#unsent = '';
    if (this.#chunked && this.#hasBody) last += `0\r\n${this.#trailer}\r\n`;
    if (last !== '') this.connection.socket.write(last, 'latin1');
    this.#finished = true;
    this.connection.answered(this, this.#closeAfter);
    return this;
  }

  /** Trailer fields, sent after a chunked body (and dropped otherwise, as node does). */
  addTrailers(headers: IncomingHttpHeaders): void {
    let trailer = '';
    for (const [name, value] of Object.entries(headers)) {
      if (!TOKEN.test(name)) throw headerError('ERR_INVALID_HTTP_TOKEN', name);
      const values = Array.isArray(value) ? value : [value ?? ''];
      for (const one of values) {
        if (INVALID_VALUE.test(one)) throw headerError('ERR_INVALID_CHAR', name);
        trailer += `${name}: ${one}\r\n`;
      }
    }
    this.#trailer = trailer;
  }

  /** Cuts the client connection (an answer that cannot be completed). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.connection.socket.destroy();
  }

  /** The client went away before the answer was complete. */
  abandoned(): void {
    if (this.#finished) return;
    this.destroyed = true;
    this.watcher?.clientClosed();
  }
}

const IDLE = 0;
const SERVING = 1;
const HANDED_OVER = 2;

/** Bytes that arrived while a request was served; beyond this the socket is paused until the answer is out. */
const MAX_WAITING_BYTES = MAX_HEAD_BYTES;

/** One client connection while the front serves it. */
class FrontConnection {
  #state = IDLE;
  #response: FrontResponse | undefined;
  /** Bytes read while a request was served: a pipelined request, handed to node:http afterwards. */
  #waiting: Buffer[] | undefined;
  #waitingBytes = 0;
  /** The socket's timeout fired while a request was served (and was let pass). */
  #timedOutServing = false;
  readonly #onData = (chunk: Buffer): void => this.#read(chunk);
  readonly #onEnd = (): void => this.#peerEnded();
  readonly #onClose = (): void => this.#closed();
  readonly #onTimeout = (): void => this.#timedOut();
  readonly #onDrain = (): void => {
    this.#response?.watcher?.clientDrained();
  };

  constructor(
    private readonly front: FrontState,
    readonly socket: Socket,
  ) {
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('timeout', this.#onTimeout);
    socket.on('drain', this.#onDrain);
    socket.on('error', ignoreError);
  }

  get keepAliveField(): string {
    return this.front.keepAliveField;
  }

  get idle(): boolean {
    return this.#state === IDLE;
  }

  #read(chunk: Buffer): void {
    if (this.#state === SERVING) {
      (this.#waiting ??= []).push(chunk);
      this.#waitingBytes += chunk.length;
      if (this.#waitingBytes > MAX_WAITING_BYTES) this.socket.pause();
      return;
    }
    const end = chunk.indexOf(CRLF_CRLF);
    const head = end !== -1 && end + 4 === chunk.length && end <= MAX_HEAD_BYTES ? parseServedHead(chunk.toString('latin1', 0, end)) : undefined;
    if (head === undefined) {
      this.handOver(chunk);
      return;
    }
    // The socket's timeout stays armed while the request is served (#timedOut lets it pass):
    // turning it off and on again per request cost a timer each time.
    this.#state = SERVING;
    const response = new FrontResponse(this, head.method);
    this.#response = response;
    this.front.handler.handleRequest(new FrontRequest(this.socket, head), response);
  }

  /** The answer is written: the connection waits for the next request, or closes. */
  answered(response: FrontResponse, close: boolean): void {
    if (this.#response !== response) return;
    this.#response = undefined;
    if (this.#state !== SERVING) return;
    this.#state = IDLE;
    if (close || this.front.closing) {
      this.socket.destroySoon();
      return;
    }
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      this.#waiting = undefined;
      this.#waitingBytes = 0;
      // node serves a pipelined request without the front's timeout, as the front served its own.
      if (this.socket.timeout !== 0) this.socket.setTimeout(0);
      this.handOver(waiting.length === 1 ? (waiting[0] as Buffer) : Buffer.concat(waiting));
      return;
    }
    // Armed once for the connection's life: every write refreshes it, so it runs from the
    // answer's last bytes. One that fired while serving is not armed any more: set it anew.
    const keepAlive = this.front.keepAliveTimeoutMs;
    if (this.#timedOutServing || this.socket.timeout !== keepAlive) {
      this.#timedOutServing = false;
      this.socket.setTimeout(keepAlive);
    }
  }

  /**
   * Gives the connection to node:http, `bytes` first (what the front read of it); node parses
   * them as if they had just arrived and serves the connection from then on.
   */
  handOver(bytes?: Buffer): void {
    this.#state = HANDED_OVER;
    this.front.forget(this);
    const socket = this.socket;
    socket.pause();
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('close', this.#onClose);
    socket.off('timeout', this.#onTimeout);
    socket.off('drain', this.#onDrain);
    socket.off('error', ignoreError);
    if (bytes !== undefined && bytes.length > 0) socket.unshift(bytes);
    this.front.handToNode(socket);
    // node's parser reads the put-back bytes from the stream, then takes the socket's reads itself.
    socket.resume();
  }

  /** The client half-closed: as node:http (without half-open), the connection is ended. */
  #peerEnded(): void {
    this.socket.end();
  }

  #closed(): void {
    this.front.forget(this);
    const response = this.#response;
    this.#response = undefined;
    response?.abandoned();
  }

  #timedOut(): void {
    if (this.#state === IDLE) this.socket.destroy();
    else if (this.#state === SERVING) this.#timedOutServing = true;
  }
}

function ignoreError(): void {
  // The connection's `close` follows; an answer under way learns of it there.
}

/** What {@link takeOverConnections} gives the listener. */
export interface H1Front {
  /** Serves `socket` with node:http from now on (bytes put back on it are parsed first). */
  handToNode(socket: Socket): void;
  /** Closes the connections waiting for a request now, and each other one once its answer is out. */
  closeIdle(): void;
}

/** What the connections of one front share. */
interface FrontState extends H1Front {
  readonly handler: ProxyHandler;
  readonly keepAliveTimeoutMs: number;
  /** `Keep-Alive: timeout=<s>` as node writes it for the same timeout. */
  readonly keepAliveField: string;
  /** Set by `closeIdle`: each connection closes once its answer is out. */
  closing: boolean;
  forget(connection: FrontConnection): void;
}

/**
 * Puts the front before node:http on `server`: node's own `connection` listener is taken off, and
 * each connection the server accepts (after the listeners already there, which admit and track
 * it) is served by the front until it hands it to node. Call once, after those listeners.
 */
export function takeOverConnections(server: Server, handler: ProxyHandler, keepAliveTimeoutMs: number): H1Front {
  const nodeListener = server.listeners('connection').find((listener) => listener.name === 'connectionListener');
  if (nodeListener === undefined) throw new Error('node:http connection listener not found: this Node version serves connections another way');
  server.off('connection', nodeListener as (socket: Socket) => void);
  const connections = new Set<FrontConnection>();
  const front: FrontState = {
    handler,
    keepAliveTimeoutMs,
    keepAliveField: `Keep-Alive: timeout=${Math.floor(keepAliveTimeoutMs / 1000)}\r\n`,
    closing: false,
    handToNode(socket: Socket): void {
      nodeListener.call(server, socket);
    },
    forget(connection: FrontConnection): void {
      connections.delete(connection);
    },
    closeIdle(): void {
      front.closing = true;
      for (const connection of connections) if (connection.idle) connection.socket.destroy();
    },
  };
  server.on('connection', (socket: Socket) => {
    if (socket.destroyed) return;
    connections.add(new FrontConnection(front, socket));
  });
  return front;
}
