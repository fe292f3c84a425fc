/**
 * What one client connection may hold, the same on every listener: an idle connection is closed
 * after {@link KEEP_ALIVE_TIMEOUT_MS}, an HTTP/2 session has stream limits and a rapid-reset
 * guard, and proxy connections stop being admitted before the process runs out of descriptors,
 * so the admin API, upstream sockets and files always find one.
 */
import { readFileSync } from 'node:fs';
import { constants as h2, type Http2Session, type SecureServerOptions, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** A client connection with no request in flight is closed after this (HTTP/1.1 keep-alive and h2 alike). */
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** Streams one h2 connection may have open at once (advertised in SETTINGS; node's default is unlimited). */
const H2_MAX_CONCURRENT_STREAMS = 100;
/** Malformed frames a session may send before node closes it (node's default: 1,000). */
const H2_MAX_INVALID_FRAMES = 100;
/** Streams a session may open beyond its limit (refused) before node closes it. */
const H2_MAX_REJECTED_STREAMS = 100;
/** Streams a client may reset before their response started, more than it let finish, before its session is closed (CVE-2023-44487). */
const H2_MAX_CLIENT_RESETS = 100;
/** After devproxy closes a session (GOAWAY), its open streams get this long before the socket is cut. */
const H2_CLOSE_GRACE_MS = 1_000;

/** HTTP/2 session options of the HTTPS listener: bounded streams, invalid and refused frames. */
export const H2_SESSION_OPTIONS: Pick<SecureServerOptions, 'maxSessionInvalidFrames' | 'maxSessionRejectedStreams' | 'peerMaxConcurrentStreams' | 'settings'> = {
  maxSessionInvalidFrames: H2_MAX_INVALID_FRAMES,
  maxSessionRejectedStreams: H2_MAX_REJECTED_STREAMS,
  peerMaxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS,
  settings: { maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS, enableConnectProtocol: true },
};

const kWatch = Symbol('devproxy.h2SessionWatch');

type WatchedStream = ServerHttp2Stream & { [kWatch]?: SessionWatch };

/**
 * Closes an h2 session when it is idle: no stream within `firstStreamMs` of the handshake, then
 * no open stream for {@link KEEP_ALIVE_TIMEOUT_MS}; also at once after a GOAWAY from the client,
 * a session error, or a rapid-reset pattern. Node's own rapid-reset defence stops reading from
 * such a session without closing it, so without this its socket would stay open for ever.
 * `socket` is the TLS socket under the session (the session only exposes a proxy of it).
 */
export function watchH2Session(session: Http2Session, socket: Duplex, firstStreamMs: number): void {
  const watch = new SessionWatch(session, socket, firstStreamMs);
  session.on('stream', (stream: WatchedStream) => watch.opened(stream));
  session.once('goaway', () => watch.close());
  session.once('error', () => watch.close());
  socket.once('close', () => watch.stopTimers());
}

/**
 * One session's count of open, finished and reset streams. Each stream gets one shared 'close'
 * listener and finds its watch on itself (its session is gone by then); the keep-alive deadline
 * is one timer per session, moved with `refresh()` when the last open stream closes, so a
 * request costs no timer of its own.
 */
class SessionWatch {
  #open = 0;
  #finished = 0;
  #resets = 0;
  #closing = false;
  /** Armed until the first stream arrives. */
  #firstStream: NodeJS.Timeout | undefined;
  /** Made when the first stream closes; a tick while streams are open does nothing. */
  #keepAlive: NodeJS.Timeout | undefined;

  constructor(
    readonly session: Http2Session,
    readonly socket: Duplex,
    firstStreamMs: number,
  ) {
    this.#firstStream = setTimeout(closeIdle, firstStreamMs, this);
    this.#firstStream.unref();
  }

  opened(stream: WatchedStream): void {
    this.#open++;
    if (this.#firstStream !== undefined) {
      clearTimeout(this.#firstStream);
      this.#firstStream = undefined;
    }
    stream[kWatch] = this;
    stream.on('close', onWatchedStreamClose);
  }

  closed(stream: ServerHttp2Stream): void {
    this.#open--;
    // node sets `aborted` (and emits 'aborted') when a stream closes before its answer ended.
    if (stream.aborted) {
      this.#resets++;
      if (this.#resets > H2_MAX_CLIENT_RESETS && this.#resets > this.#finished) this.cut();
    }
    if (stream.rstCode === h2.NGHTTP2_NO_ERROR) this.#finished++;
    if (this.#open > 0 || this.#closing) return;
    if (this.#keepAlive === undefined) {
      this.#keepAlive = setTimeout(closeIdle, KEEP_ALIVE_TIMEOUT_MS, this);
      this.#keepAlive.unref();
    } else {
      this.#keepAlive.refresh();
    }
  }

  /** The first-stream or keep-alive deadline passed: closes the session unless a stream is open. */
  idle(): void {
    if (this.#open === 0) this.close();
  }

  /** A rapid-reset client gets no graceful close: every frame it sent meanwhile costs event-loop time. */
  cut(): void {
    this.#closing = true;
    this.stopTimers();
    this.session.destroy();
    this.socket.destroy();
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.stopTimers();
    const { session, socket } = this;
    if (!session.closed && !session.destroyed) session.close();
    const grace = setTimeout(() => this.cut(), H2_CLOSE_GRACE_MS);
    grace.unref();
    session.once('close', () => {
      clearTimeout(grace);
      socket.destroy();
    });
  }

  stopTimers(): void {
    clearTimeout(this.#firstStream);
    clearTimeout(this.#keepAlive);
  }
}

function closeIdle(watch: SessionWatch): void {
  watch.idle();
}

function onWatchedStreamClose(this: WatchedStream): void {
  this[kWatch]?.closed(this);
}

/** Descriptors never handed to proxy clients: the admin API, files, watchers, Docker, logs. */
const FD_RESERVE = 64;
/** Budget used where the descriptor limit cannot be read (no /proc): effectively unbounded. */
const UNKNOWN_LIMIT_BUDGET = Number.POSITIVE_INFINITY;

/** How many client connections and upstream requests the proxy may hold at once. */
export interface DescriptorBudget {
  /** Client connections across every proxy listener (HTTP and HTTPS). */
  clientConnections: number;
  /** Upstream requests in flight across every route (each may hold a socket). */
  upstreamRequests: number;
}

/**
 * Splits the process's descriptor limit: {@link FD_RESERVE} stay free, half of the rest may be
 * client connections and half upstream requests, so a flood of either never takes the last
 * descriptor (the admin API still answers, `devproxy status` still works).
 */
export function budgetFromLimit(limit: number): DescriptorBudget {
  if (!Number.isFinite(limit)) return { clientConnections: UNKNOWN_LIMIT_BUDGET, upstreamRequests: UNKNOWN_LIMIT_BUDGET };
  const half = Math.max(1, Math.floor((limit - FD_RESERVE) / 2));
  return { clientConnections: half, upstreamRequests: half };
}

/** The soft RLIMIT_NOFILE of this process from /proc (Linux); Infinity where it cannot be read. */
export function descriptorLimit(): number {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return line === null || line[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(line[1]);
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

const kCounted = Symbol('devproxy.budget-counted');

/**
 * Client connections open across the proxy listeners that share it. A connection over the
 * budget is closed as soon as it is accepted (as `server.maxConnections` does for one server).
 */
export class ConnectionBudget {
  #open = 0;

  constructor(readonly max: number) {}

  /** Counts a newly accepted socket; false when the budget is spent (the caller destroys it). */
  admit(socket: Socket): boolean {
    const counted = socket as Socket & { [kCounted]?: true };
    // A listener may present a socket again (an ignored Upgrade is parsed anew): count it once.
    if (counted[kCounted] === true) return true;
    if (this.#open >= this.max) return false;
    counted[kCounted] = true;
    this.#open++;
    socket.once('close', () => this.#open--);
    return true;
  }
}
