/**
 * What the plain HTTP and the HTTPS listeners share: one server per loopback address on one port
 * (`::1` skipped where the host has no IPv6), node:http's HTTP/1.1 timeouts, admission under the
 * connection budget, and the WebSocket upgrade dispatch.
 */
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { KEEP_ALIVE_TIMEOUT_MS, type ConnectionBudget } from './connection-limits.js';
import type { ProxyHandler } from './types.js';
import { isWebSocketUpgrade, requeueWithoutUpgrade } from './websocket.js';

/** Addresses bound by default; `::1` is skipped on hosts without an IPv6 loopback. */
const DEFAULT_HOSTS: readonly string[] = ['127.0.0.1', '::1'];
/** Longest wait for a request's headers, and for the first request of a connection; slowloris clients are cut after it. */
export const HEADERS_TIMEOUT_MS = 30_000;
/** node checks header deadlines on an interval (30 s by default, which would double the bound). */
const MAX_CONNECTIONS_CHECK_INTERVAL_MS = 1_000;

/** node:http server settings both listeners give their HTTP/1.1 side. */
export interface Http1Timeouts {
  requestTimeout: number;
  headersTimeout: number;
  connectionsCheckingInterval: number;
  keepAliveTimeout: number;
}

/**
 * The HTTP/1.1 timeouts of a listener: requests may stream for hours (no request timeout: long
 * uploads and event streams), headers must arrive within `headersTimeout` (checked often enough to
 * hold that bound), and an idle keep-alive connection closes after {@link KEEP_ALIVE_TIMEOUT_MS}.
 */
export function http1Timeouts(headersTimeout: number): Http1Timeouts {
  return {
    requestTimeout: 0,
    headersTimeout,
    connectionsCheckingInterval: Math.min(MAX_CONNECTIONS_CHECK_INTERVAL_MS, headersTimeout),
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
  };
}

/** Closes each connection `server` accepts beyond `budget` at once (nothing when there is no budget). */
export function admitWithin(server: Server, budget: ConnectionBudget | undefined): void {
  if (budget === undefined) return;
  server.on('connection', (socket: Socket) => {
    if (!budget.admit(socket)) socket.destroy();
  });
}

/**
 * Hands WebSocket upgrades to `handler` (after `onTunnel`, which may track the socket). Any other
 * `Upgrade` is put back on its socket without it and `reparse` makes the server parse it again as
 * an ordinary request, so the write policy applies to it like to any other.
 */
export function serveUpgrades(server: Server, handler: ProxyHandler, reparse: (socket: Duplex) => void, onTunnel?: (socket: Duplex) => void): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!isWebSocketUpgrade(req)) {
      requeueWithoutUpgrade(req, socket, head);
      reparse(socket);
      return;
    }
    // The tunnel has no idle end of its own: the first-request timeout must not cut it.
    (socket as Socket).setTimeout(0);
    onTunnel?.(socket);
    handler.handleUpgrade(req, socket, head);
  });
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Servers bound by {@link listenOnHosts}, and the port they share. */
export interface BoundServers<S extends Server> {
  servers: S[];
  port: number;
}

/** Options of {@link listenOnHosts}. */
export interface ListenOptions<S extends Server> {
  /** Addresses to bind; default `127.0.0.1` and `::1` (skipped when the machine has no IPv6 loopback). */
  hosts: string[] | undefined;
  /** 0 lets the first address pick a free port, which the others then share. */
  port: number;
  /** Makes one server (one per address). */
  create: () => S;
  /** Closes an already bound server when a later address fails. */
  discard: (server: S) => Promise<void>;
  /** Turns a listen error into the one to throw (default: as it is). */
  describeError?: (error: NodeJS.ErrnoException, host: string, port: number) => unknown;
}

/**
 * Binds one server per address, all on the same port. When one fails, the ones already bound are
 * discarded and the error is thrown; a missing IPv6 loopback is skipped for the default list only.
 */
export async function listenOnHosts<S extends Server>(opts: ListenOptions<S>): Promise<BoundServers<S>> {
  const servers: S[] = [];
  let port = opts.port;
  try {
    for (const host of opts.hosts ?? DEFAULT_HOSTS) {
      const server = opts.create();
      try {
        await listen(server, port, host);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (opts.hosts === undefined && host === '::1' && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
        throw opts.describeError === undefined ? error : opts.describeError(error as NodeJS.ErrnoException, host, port);
      }
      servers.push(server);
      port = (server.address() as AddressInfo).port;
    }
  } catch (error) {
    await Promise.all(servers.map(opts.discard));
    throw error;
  }
  return { servers, port };
}
