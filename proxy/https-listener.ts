/**
 * The HTTPS listener: TLS with a certificate per SNI name from the local CA, h2 or HTTP/1.1 by
 * ALPN, and WebSockets over both — HTTP/1.1 `Upgrade` and HTTP/2 extended CONNECT (RFC 8441).
 *
 * Everything after TLS is the shared {@link ProxyHandler}: requests of both protocols go to
 * `handleRequest` (bodiless h2 streams through the core-API front of `h2-front.ts`, the rest as
 * node's compat objects), HTTP/1.1 upgrades to `handleUpgrade` and an h2 WebSocket
 * CONNECT to `handleWebSocketConnect`, so routing, header rewriting and error pages stay in one
 * place. Browsers that negotiated h2 open WebSockets this way (Vite HMR), and proxies that answer
 * them with 405 break HMR.
 */
import { IncomingMessage } from 'node:http';
import { createSecureServer, Http2ServerRequest, type Http2SecureServer, type Http2ServerResponse, type Http2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { CertificateStore } from '../certs/store.js';
import { SERVER_TLS_POLICY } from '../certs/tls-policy.js';
import { DevproxyError, isDevproxyError } from '../errors.js';
import { serveH2Streams } from './h2-front.js';
import { H2_SESSION_OPTIONS, watchH2Session, type ConnectionBudget } from './connection-limits.js';
import { admitWithin, HEADERS_TIMEOUT_MS, http1Timeouts, listenOnHosts, serveUpgrades } from './listen.js';
import type { Logger } from '../logger.js';
import type { BridgePeers } from './bridge-peers.js';
import type { ProxyHandler } from './types.js';

/** The no-SNI certificate (clients dialling an IP literal) is re-read this often, so it renews. */
const DEFAULT_CERT_REFRESH_MS = 12 * 3_600_000;
/** After `close()`, connections still busy are cut after this long. */
const CLOSE_GRACE_MS = 1_000;
export interface HttpsProxyOptions {
  /** Serves every request and WebSocket after TLS. */
  handler: ProxyHandler;
  /** TCP port; 0 picks a free one (the returned `port` says which). */
  port: number;
  /** Addresses to bind (default `127.0.0.1` and, where the host has IPv6, `::1`). */
  hosts?: string[];
  /** Mints and caches a certificate per SNI name; unknown names fail the handshake. */
  certificates: CertificateStore;
  /** Refused handshakes and bridge failures are reported here. */
  logger?: Logger;
  /** Longest wait for a request after the handshake, and for an HTTP/1.1 request's headers, in ms; default 30 s. */
  headersTimeoutMs?: number;
  /** Client connections shared with the other proxy listeners; default: unbounded. */
  connectionBudget?: ConnectionBudget;
  /** Set on a Docker bridge listener: every connection it accepts (TLS socket, and h2 session) is registered with its peer (the handler's own {@link BridgePeers}). */
  bridgePeers?: BridgePeers;
}

/** A running HTTPS listener. */
export interface HttpsProxy {
  /** The bound port (the chosen one when `port` was 0). */
  port: number;
  /** Stops listening, lets in-flight h2 streams finish for a moment, then cuts connections. */
  close(): Promise<void>;
}

/**
 * Starts the HTTPS (h2 + HTTP/1.1) listener on loopback. Throws `DEVPROXY_ERR_PORT_IN_USE` when
 * the port is taken and `DEVPROXY_ERR_CA_CORRUPT` when the CA cannot be used.
 */
export async function startHttpsProxy(opts: HttpsProxyOptions): Promise<HttpsProxy> {
  const defaultLeaf = await opts.certificates.getLeaf('localhost');
  const sockets = new Set<TLSSocket>();
  const sessions = new Set<Http2Session>();
  const headersTimeout = opts.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  /** The TLS socket whose session node is creating: its 'secureConnection' listener creates the session synchronously. */
  let handshaken: TLSSocket | undefined;

  const makeServer = (): Http2SecureServer => {
    const server = createSecureServer(
      {
        ...SERVER_TLS_POLICY,
        allowHTTP1: true,
        ...H2_SESSION_OPTIONS,
        cert: defaultLeaf.pair.certPem,
        key: defaultLeaf.pair.keyPem,
        SNICallback: opts.certificates.SNICallback,
        // A client that connects and never says hello holds a socket: bound it like the headers.
        handshakeTimeout: headersTimeout,
      },
      (req, res) => {
        if (req.httpVersionMajor === 1) {
          (req.socket as Socket).setTimeout(0);
          opts.handler.handleRequest(req, res);
          return;
        }
        // A rapid-reset client sends HEADERS and RST_STREAM together: node reads both before
        // this turn ends, so waiting one turn lets a reset stream cost nothing upstream.
        setImmediate(serveOpenStream, opts.handler, req, res);
      },
    );
    // allowHTTP1 gives HTTP/1.1 clients node:http's defaults (a 5-minute requestTimeout, header
    // deadlines checked every 30 s, no keep-alive timeout): the plain listener's settings instead.
    Object.assign(server, http1Timeouts(headersTimeout));
    admitWithin(server, opts.connectionBudget);
    // The HTTP/1.1 side of this server starts parsing a TLS socket on 'secureConnection'.
    serveUpgrades(server, opts.handler, (socket) => server.emit('secureConnection', socket));
    // node's h2 compat layer routes every CONNECT here (and answers 405 without a listener); the
    // HTTP/1.1 side emits the same event with a raw socket for forward-proxy CONNECTs.
    server.on('connect', (req: IncomingMessage | Http2ServerRequest, resOrSocket: Http2ServerResponse | Duplex) => {
      if (req instanceof Http2ServerRequest && req.headers[':protocol'] === 'websocket') {
        opts.handler.handleWebSocketConnect(req);
      } else if (req instanceof Http2ServerRequest) {
        (resOrSocket as Http2ServerResponse).writeHead(405, { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' }).end();
      } else {
        (resOrSocket as Duplex).end('HTTP/1.1 405 Method Not Allowed\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      }
    });
    // Bodiless h2 requests skip node's compat objects; the rest keep the listener above.
    serveH2Streams(server, opts.handler);
    // Runs before node's own listener, which creates the h2 session (and emits 'session') at once.
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      handshaken = socket;
    });
    server.on('secureConnection', (socket: TLSSocket) => {
      handshaken = undefined;
      sockets.add(socket);
      opts.bridgePeers?.admit(socket, socket);
      socket.once('close', () => sockets.delete(socket));
      // node's header deadline starts at the first byte: a TLS client that sends nothing would
      // hold its socket forever. Idle until the first request → cut (h2: watchH2Session).
      if (socket.alpnProtocol !== 'h2') socket.setTimeout(headersTimeout);
    });
    server.on('session', (session: Http2Session) => {
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
      // Destroying an h2 session that never got the client preface leaves its socket open: the
      // watch cuts the TLS socket itself.
      if (handshaken !== undefined) watchH2Session(session, handshaken, headersTimeout);
      // An h2 request names its session as its connection.
      opts.bridgePeers?.admit(session, handshaken ?? session.socket);
    });
    server.on('tlsClientError', (error: Error) => {
      // The SNI refusal reaches here wrapped or as-is depending on where the handshake failed.
      const cause = isDevproxyError(error) ? error : isDevproxyError(error.cause) ? error.cause : undefined;
      if (cause !== undefined) opts.logger?.warn(`refused TLS handshake: ${cause.message}`);
    });
    return server;
  };

  const { servers, port } = await listenOnHosts({
    hosts: opts.hosts,
    port: opts.port,
    create: makeServer,
    discard: (server) => new Promise<void>((resolve) => server.close(() => resolve())),
    describeError: (error, host, at) =>
      error.code === 'EADDRINUSE'
        ? new DevproxyError('DEVPROXY_ERR_PORT_IN_USE', `the HTTPS port ${host}:${at} is already in use`, {
            hint: 'choose another port with --https-port / DEVPROXY_HTTPS_PORT, or stop what holds it',
            cause: error,
          })
        : error,
  });

  const refresh = setInterval(() => {
    opts.certificates.getLeaf('localhost').then(
      (leaf) => {
        for (const server of servers) server.setSecureContext({ ...SERVER_TLS_POLICY, cert: leaf.pair.certPem, key: leaf.pair.keyPem });
      },
      (error: unknown) => opts.logger?.error(`could not renew the default certificate: ${String(error)}`),
    );
  }, DEFAULT_CERT_REFRESH_MS);
  refresh.unref();

  return {
    port,
    async close() {
      clearInterval(refresh);
      const closed = servers.map((s) => new Promise((resolve) => s.close(resolve)));
      for (const session of sessions) session.close();
      for (const socket of sockets) if (socket.alpnProtocol !== 'h2') endWhenIdle(socket);
      const grace = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, CLOSE_GRACE_MS);
      await Promise.all(closed);
      clearTimeout(grace);
    },
  };
}

/**
 * Ends an HTTP/1.1-over-TLS connection as soon as it has no response under way: idle keep-alive
 * and upgraded (WebSocket) sockets at once, a busy one after its response, like the plain
 * listener's drain. The grace timer in close() cuts what is still busy after it.
 */
function endWhenIdle(socket: TLSSocket): void {
  const response = (socket as TLSSocket & { _httpMessage?: { once(event: 'finish', listener: () => void): void } | null })._httpMessage;
  if (response) response.once('finish', () => socket.end());
  else socket.end();
}

/** Serves an h2 request unless its client already reset the stream. */
function serveOpenStream(handler: ProxyHandler, req: Http2ServerRequest, res: Http2ServerResponse): void {
  if (!req.stream.destroyed) handler.handleRequest(req, res);
}

