/**
 * The proxy engine: `createProxyHandler` turns a request for `<service>.<worktree>.localhost`
 * into a forwarded exchange with the route's local or remote target (HTTP/1.1 and HTTP/2
 * compat requests alike), and `startHttpProxy` serves it on plain HTTP. The hot path is raw
 * node:http + undici `Pool.dispatch`: one small handler object per request, no closures.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Route, Target } from '../router/types.js';
import { renderErrorPage, renderLandingPage, wantsHtml } from './error-pages.js';
import { buildClientHeaders, buildUpstreamHeaders, readHops, ROUTE_HEADER, type ResponseHeaderRewriter } from './forward-headers.js';
import {
  hostEntries,
  isHttpsRequest,
  profileOf,
  requestAuthority,
  requestPath,
  resolveHost,
  stableOriginFor,
  type ClientRequest,
  type ProxyCore,
  type ProxyHandlerOptions,
} from './proxy-core.js';
import { rewriteLocation, rewriteSetCookie, type RemoteAuthority, type StableOrigin } from './response-rewrite.js';
import type { ProxyHandler } from './types.js';
import { mapUpstreamError, type ProxyErrorInfo } from './upstream-errors.js';
import { DEFAULT_UPSTREAM_TIMEOUTS, UpstreamPools, type UpstreamTimeouts } from './upstream-pools.js';
import { forwardUpgrade } from './websocket.js';

export type { ProxyHandlerOptions } from './proxy-core.js';

type ClientResponse = (ServerResponse | Http2ServerResponse) & { [kForward]?: ForwardExchange };

const kForward = Symbol('devproxy.forward');

/** Reason given to undici when the client went away; maps to "write nothing". */
const CLIENT_ABORTED: Error = Object.assign(new Error('client closed the connection'), { code: 'DEVPROXY_CLIENT_ABORTED' });

function sendPage(req: ClientRequest, res: ClientResponse, status: number, body: string, json: boolean, route?: Route): void {
  const headers = [
    'content-type', json ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
  ];
  if (route !== undefined) headers.push(ROUTE_HEADER, route.mode);
  const out = res as ServerResponse;
  out.writeHead(status, headers);
  if (req.method === 'HEAD') out.end();
  else out.end(body);
}

function sendError(req: ClientRequest, res: ClientResponse, info: ProxyErrorInfo, route?: Route): void {
  const html = wantsHtml(req.headers.accept);
  sendPage(req, res, info.status, renderErrorPage(info, html), !html, route);
}

/** Rewrites a remote's Location/Set-Cookie for one exchange. */
class RemoteRewriter implements ResponseHeaderRewriter {
  constructor(
    private readonly remote: RemoteAuthority,
    private readonly stable: StableOrigin,
  ) {}

  location(value: string): string {
    return rewriteLocation(value, this.remote, this.stable);
  }

  setCookie(value: string): string {
    return rewriteSetCookie(value, this.remote, this.stable.scheme === 'https');
  }
}

function onClientDrain(this: ClientResponse): void {
  this[kForward]?.resumeUpstream();
}

function onClientClose(this: ClientResponse): void {
  this[kForward]?.clientClosed();
}

/** One forwarded request: an undici dispatch handler streaming the response into `res`. */
class ForwardExchange implements Dispatcher.DispatchHandler {
  #abort: ((error?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #clientGone = false;
  #done = false;

  constructor(
    private readonly core: ProxyCore,
    private readonly req: ClientRequest,
    private readonly res: ClientResponse,
    private readonly route: Route,
    private readonly target: Target,
    private readonly rewriter: ResponseHeaderRewriter | undefined,
  ) {
    res[kForward] = this;
    res.on('drain', onClientDrain);
    res.on('close', onClientClose);
  }

  onConnect(abort: (error?: Error) => void): void {
    if (this.#clientGone) abort(CLIENT_ABORTED);
    else this.#abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // node:http already answered the client's 100-continue; other 1xx are not relayed.
    if (statusCode < 200) return true;
    this.#resume = resume;
    (this.res as ServerResponse).writeHead(statusCode, buildClientHeaders(rawHeaders, this.target.kind, this.rewriter));
    return true;
  }

  onData(chunk: Buffer): boolean {
    // false pauses the upstream socket until the client drains (backpressure, no buffering).
    return (this.res as ServerResponse).write(chunk);
  }

  onComplete(trailers: string[] | Buffer[] | null): void {
    this.#done = true;
    // Trailers are relayed because `TE: trailers` was forwarded (gRPC-web, Server-Timing).
    if (trailers !== null && trailers.length > 0) this.res.addTrailers(trailerObject(trailers));
    this.res.end();
  }

  onError(error: Error): void {
    this.#done = true;
    if (this.#clientGone) return;
    const info = mapUpstreamError(error, { route: this.route, target: this.target, profile: profileOf(this.core, this.route) });
    if (info === null) return;
    this.core.logger?.warn(`${this.route.host}: ${info.message}`);
    if (!this.res.headersSent) sendError(this.req, this.res, info, this.route);
    else this.res.destroy();
  }

  resumeUpstream(): void {
    this.#resume?.();
  }

  clientClosed(): void {
    if (this.#done) return;
    this.#clientGone = true;
    this.#abort?.(CLIENT_ABORTED);
  }
}

function trailerObject(raw: readonly (string | Buffer)[]): Record<string, string> {
  const trailers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) trailers[String(raw[i]).toLowerCase()] = String(raw[i + 1]);
  return trailers;
}

/** True when the request carries a body: HTTP/2 says so per stream, HTTP/1.1 by its framing headers. */
function hasBody(req: ClientRequest): boolean {
  if (req.httpVersionMajor === 2) return !(req as Http2ServerRequest).stream.endAfterHeaders;
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

function forward(core: ProxyCore, req: ClientRequest, res: ClientResponse, route: Route, target: Target, hops: number, https: boolean): void {
  const authority = requestAuthority(req) as string;
  let path = requestPath(req.url);
  let rewriter: ResponseHeaderRewriter | undefined;
  let upstreamHost = authority;
  if (target.kind === 'remote') {
    path = target.basePath + path;
    upstreamHost = target.authority;
    rewriter = new RemoteRewriter(target, stableOriginFor(core, route.host, https));
  }
  const headers = buildUpstreamHeaders(req.rawHeaders, {
    host: upstreamHost,
    forwardedFor: req.socket?.remoteAddress ?? '',
    forwardedHost: authority,
    forwardedProto: https ? 'https' : 'http',
    hops,
  });
  const exchange = new ForwardExchange(core, req, res, route, target, rewriter);
  let pool;
  try {
    pool = core.pools.poolFor(target);
  } catch (error) {
    exchange.onError(error as Error);
    return;
  }
  pool.dispatch(
    { method: req.method as Dispatcher.HttpMethod, path, headers, body: hasBody(req) ? (req as IncomingMessage) : null },
    exchange,
  );
}

/**
 * Creates the handler shared by the HTTP/1.1 and HTTP/2 listeners. `options` is kept by
 * reference and read per request, so `httpPort`/`httpsPort` may be filled in after binding port 0.
 */
export function createProxyHandler(options: ProxyHandlerOptions): ProxyHandler {
  const timeouts: UpstreamTimeouts = { ...DEFAULT_UPSTREAM_TIMEOUTS, ...options.upstreamTimeouts };
  const core: ProxyCore = {
    options,
    pools: new UpstreamPools(timeouts, options.extraCaFiles),
    timeouts,
    logger: options.logger,
    tunnels: new Set(),
  };
  return {
    handleRequest(req, res) {
      const https = isHttpsRequest(req);
      const hops = readHops(req.rawHeaders);
      const resolved = resolveHost(core, requestAuthority(req), https, hops);
      if (resolved.kind === 'route') {
        forward(core, req, res, resolved.route, resolved.target, hops, https);
      } else if (resolved.kind === 'landing') {
        const html = wantsHtml(req.headers.accept);
        sendPage(req, res, 200, renderLandingPage(hostEntries(core, core.options.getTable(), https), html), !html);
        req.resume();
      } else {
        sendError(req, res, resolved.info, resolved.route);
        req.resume();
      }
    },
    handleUpgrade(req, socket, head) {
      forwardUpgrade(core, req, socket, head);
    },
    close() {
      for (const socket of core.tunnels) socket.destroy();
      core.tunnels.clear();
      return core.pools.close();
    },
  };
}

/** A running plain-HTTP listener set. */
export interface HttpProxyServer {
  /** The bound port (the one assigned when 0 was asked). */
  port: number;
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
}

/** Longest wait for a request's headers; slowloris clients are cut after it. */
const HEADERS_TIMEOUT_MS = 30_000;
/** node checks header deadlines on an interval (30 s by default, which would double the bound). */
const MAX_CONNECTIONS_CHECK_INTERVAL_MS = 1_000;
/** How long `close()` lets in-flight requests finish before it cuts them. */
const DRAIN_TIMEOUT_MS = 5_000;
/** How often a draining listener closes connections whose request has just finished. */
const DRAIN_POLL_MS = 25;
/** Idle keep-alive connections from clients are closed after this. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

const BAD_REQUEST_RESPONSE =
  'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n';

const HEADERS_TOO_LARGE_RESPONSE =
  'HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';

/** The first request arrived: from here node's own header and keep-alive timeouts apply. */
function clearSocketTimeout(req: IncomingMessage): void {
  req.socket.setTimeout(0);
}

function onClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  // A reset socket has nobody to read an answer; one with a response under way cannot take another.
  if (error.code === 'ECONNRESET' || !socket.writable || (socket as Socket & { _httpMessage?: unknown })._httpMessage) {
    socket.destroy();
    return;
  }
  socket.end(error.code === 'HPE_HEADER_OVERFLOW' ? HEADERS_TOO_LARGE_RESPONSE : BAD_REQUEST_RESPONSE);
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** A listener and every socket it accepted, so a drain can end the upgraded ones too. */
interface TrackedServer {
  server: http.Server;
  sockets: Set<Duplex>;
  upgraded: Set<Duplex>;
}

/**
 * Stops accepting, lets in-flight requests finish for up to `drainMs`, then cuts what is left.
 * Keep-alive connections are closed as soon as they are idle. Upgraded (WebSocket) sockets are
 * ended at once: a tunnel has no end of its own to wait for, and `server.close()` would
 * otherwise wait for it forever (node counts upgraded sockets as open connections).
 */
function drainServer(tracked: TrackedServer, drainMs: number): Promise<void> {
  const { server, sockets, upgraded } = tracked;
  return new Promise((resolve) => {
    let poll: NodeJS.Timeout | undefined;
    let cut: NodeJS.Timeout | undefined;
    server.close(() => {
      clearInterval(poll);
      clearTimeout(cut);
      resolve();
    });
    for (const socket of upgraded) socket.end();
    server.closeIdleConnections();
    poll = setInterval(() => server.closeIdleConnections(), DRAIN_POLL_MS);
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
  const hosts = opts.hosts ?? ['127.0.0.1', '::1'];
  const servers: TrackedServer[] = [];
  let port = opts.port;
  const { handler } = opts;
  const headersTimeout = opts.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const drainMs = opts.drainTimeoutMs ?? DRAIN_TIMEOUT_MS;
  try {
    for (const host of hosts) {
      const server = http.createServer({
        requestTimeout: 0,
        headersTimeout,
        connectionsCheckingInterval: Math.min(MAX_CONNECTIONS_CHECK_INTERVAL_MS, headersTimeout),
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      });
      const tracked: TrackedServer = { server, sockets: new Set(), upgraded: new Set() };
      server.on('connection', (socket: Socket) => {
        tracked.sockets.add(socket);
        socket.once('close', () => {
          tracked.sockets.delete(socket);
          tracked.upgraded.delete(socket);
        });
        // node's headersTimeout starts at the first byte: a client that connects and sends
        // nothing would hold its socket forever. Idle until the first request → cut.
        socket.setTimeout(headersTimeout);
      });
      server.on('request', clearSocketTimeout);
      server.on('request', handler.handleRequest);
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        (socket as Socket).setTimeout(0);
        tracked.upgraded.add(socket);
        handler.handleUpgrade(req, socket, head);
      });
      server.on('clientError', onClientError);
      try {
        await listen(server, port, host);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        // No IPv6 loopback on this machine: serve IPv4 only rather than fail.
        if (host === '::1' && opts.hosts === undefined && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
        throw error;
      }
      servers.push(tracked);
      port = (server.address() as { port: number }).port;
    }
  } catch (error) {
    await Promise.all(servers.map((tracked) => drainServer(tracked, 0)));
    throw error;
  }
  return {
    port,
    async close() {
      await Promise.all(servers.map((tracked) => drainServer(tracked, drainMs)));
    },
  };
}
