/**
 * The plain-HTTP listener: HTTP/1.1 on each loopback address, WebSocket upgrades, a bare 400/431
 * for malformed requests, and a draining close.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { KEEP_ALIVE_TIMEOUT_MS, type ConnectionBudget } from './connection-limits.js';
import { takeOverConnections, type H1Front } from './h1-front.js';
import { admitWithin, HEADERS_TIMEOUT_MS, http1Timeouts, listenOnHosts, serveUpgrades } from './listen.js';
import type { BridgePeers } from './bridge-peers.js';
import type { ProxyHandler } from './types.js';

/** A running plain-HTTP listener set. */
export interface HttpProxyServer {
  /** The bound port (the one assigned when 0 was asked). */
  port: number;
  /** The addresses it listens on (a default `::1` is left out on hosts without IPv6). */
  addresses: string[];
  /** Stops accepting, drains in-flight requests (up to `drainTimeoutMs`), ends WebSockets. */
  close(): Promise<void>;
}

/** Options of {@link startHttpProxy}. */
export interface StartHttpProxyOptions {
  handler: ProxyHandler;
  /** 0 picks a free port. */
  port: number;
  /** Addresses to bind, default `['127.0.0.1', '::1']`; `::1` is skipped when the machine has no IPv6 loopback. */
  hosts?: string[];
  /** Longest wait for a request's headers in ms (slowloris clients are cut after it); default 30 s. */
  headersTimeoutMs?: number;
  /** How long `close()` lets in-flight requests finish before cutting them, in ms; default 5 s. */
  drainTimeoutMs?: number;
  /** Client connections shared with the other proxy listeners; default: unbounded. */
  connectionBudget?: ConnectionBudget;
  /** Set on a Docker bridge listener: every connection it accepts is registered with its peer (the handler's own {@link BridgePeers}). */
  bridgePeers?: BridgePeers;
}

/** How long `close()` lets in-flight requests finish before it cuts them. */
const DRAIN_TIMEOUT_MS = 5_000;
/** How often a draining listener closes connections whose request has just finished. */
const DRAIN_POLL_MS = 25;

const BAD_REQUEST_RESPONSE =
  'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n';

const HEADERS_TOO_LARGE_RESPONSE =
  'HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';

/** The first request arrived: from here node's own header and keep-alive timeouts apply (node resets the socket's to 0 before each later one). */
function clearSocketTimeout(req: IncomingMessage): void {
  if (req.socket.timeout !== 0) req.socket.setTimeout(0);
}

function onClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  // A reset socket has nobody to read an answer; one with a response under way cannot take another.
  if (error.code === 'ECONNRESET' || !socket.writable || (socket as Socket & { _httpMessage?: unknown })._httpMessage) {
    socket.destroy();
    return;
  }
  socket.end(error.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE_RESPONSE : BAD_REQUEST_RESPONSE);
}

/** Every socket a listener set accepted, so a drain can end the upgraded ones too. */
interface Accepted {
  sockets: Set<Duplex>;
  upgraded: Set<Duplex>;
}

/**
 * Stops accepting, lets in-flight requests finish for up to `drainMs`, then cuts what is left.
 * Keep-alive connections are closed as soon as they are idle. Upgraded (WebSocket) sockets are
 * ended at once: a tunnel has no end of its own to wait for, and `server.close()` would
 * otherwise wait for it forever (node counts upgraded sockets as open connections).
 */
function drainServer(server: http.Server, front: H1Front, accepted: Accepted, drainMs: number): Promise<void> {
  const { sockets, upgraded } = accepted;
  const closeIdle = (): void => {
    server.closeIdleConnections();
    front.closeIdle();
  };
  return new Promise((resolve) => {
    let poll: NodeJS.Timeout | undefined;
    let cut: NodeJS.Timeout | undefined;
    server.close(() => {
      clearInterval(poll);
      clearTimeout(cut);
      resolve();
    });
    for (const socket of upgraded) socket.end();
    closeIdle();
    poll = setInterval(closeIdle, DRAIN_POLL_MS);
    cut = setTimeout(() => {
      clearInterval(poll);
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
    }, drainMs);
  });
}

/**
 * Serves `handler` on plain HTTP on each of `hosts` (same port on all). Requests may stream for
 * hours (requestTimeout 0); headers must arrive within 30 s; malformed requests get a bare 400.
 * `close()` drains: in-flight requests get `drainTimeoutMs`, WebSockets are ended at once.
 */
export async function startHttpProxy(opts: StartHttpProxyOptions): Promise<HttpProxyServer> {
  const { handler } = opts;
  const headersTimeout = opts.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const drainMs = opts.drainTimeoutMs ?? DRAIN_TIMEOUT_MS;
  const accepted: Accepted = { sockets: new Set(), upgraded: new Set() };
  const fronts = new Map<http.Server, H1Front>();
  const create = (): http.Server => {
    const server = http.createServer(http1Timeouts(headersTimeout));
    admitWithin(server, opts.connectionBudget);
    server.on('connection', (socket: Socket) => {
      if (socket.destroyed) return;
      opts.bridgePeers?.admit(socket, socket);
      accepted.sockets.add(socket);
      socket.once('close', () => {
        accepted.sockets.delete(socket);
        accepted.upgraded.delete(socket);
      });
      // node's headersTimeout starts at the first byte: a client that connects and sends
      // nothing would hold its socket forever. Idle until the first request → cut.
      socket.setTimeout(headersTimeout);
    });
    // One listener: node clones the listener array of an event that has several, on every request.
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      clearSocketTimeout(req);
      handler.handleRequest(req, res);
    });
    // Most requests are served by devproxy's own front; it hands node:http the rest.
    const front = takeOverConnections(server, handler, KEEP_ALIVE_TIMEOUT_MS);
    fronts.set(server, front);
    serveUpgrades(
      server,
      handler,
      (socket) => {
        // An Upgrade put back without it is parsed again by node, under the first-request timeout.
        (socket as Socket).setTimeout(headersTimeout);
        front.handToNode(socket as Socket);
      },
      (socket) => accepted.upgraded.add(socket),
    );
    server.on('clientError', onClientError);
    return server;
  };
  const { servers, port } = await listenOnHosts({ hosts: opts.hosts, port: opts.port, create, discard: (server) => drainServer(server, fronts.get(server) as H1Front, accepted, 0) });
  return {
    port,
    addresses: servers.map((server) => (server.address() as AddressInfo).address),
    async close() {
      await Promise.all(servers.map((server) => drainServer(server, fronts.get(server) as H1Front, accepted, drainMs)));
    },
  };
}
