/**
 * The proxy engine: `createProxyHandler` turns a request for `<service>.<worktree>.localhost`
 * into a forwarded exchange with the route's local or remote target (HTTP/1.1 and HTTP/2
 * compat requests alike); the listeners (`http-listener.ts`, `https-listener.ts`) serve it. The
 * hot path is raw node:http + undici `Pool.dispatch`: one small handler object per request, no
 * closures.
 */
import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Dispatcher } from 'undici';
import { ERROR_HINTS } from '../errors.js';
import type { RemoteHop, Route, Target } from '../router/types.js';
import { AzureTokenCache } from './azure-token.js';
import { answeredCors, isPreflight, isWorktreeOrigin, preflightHeaders, withCorsHeaders, type CorsMode } from './cors.js';
import { renderErrorPage, renderLandingPage, renderWakingPage, wantsHtml } from './error-pages.js';
import { buildClientHeaders, buildUpstreamHeaders, ERROR_CODE_HEADER, ROUTE_HEADER, type ResponseHeaderRewriter } from './forward-headers.js';
import {
  profileOf,
  stableOriginFor,
  upstreamPath,
  worktreePathOf,
  type ClientRequest,
  type ProxyCore,
  type ProxyHandlerOptions,
} from './proxy-core.js';
import { landingEntries, refusalOf, resolveRequest, type RequestContext } from './request-context.js';
import {
  hopFailure,
  isWakingStatus,
  lendsCredentials,
  mayRetryWake,
  refusedWrite,
  RemoteHopHeaders,
  WAKE_PAGE_RETRY_S,
  wakeDelayMs,
  wakeErrorCode,
  wakePlanFor,
  type WakePlan,
} from './remote-hop.js';
import { rewriteLocation, rewriteSetCookie, rewriteSiblingLocation, type RemoteAuthority, type SiblingRemote, type StableOrigin } from './response-rewrite.js';
import { exchangeStart, recordExchange } from './request-log.js';
import type { ProxyHandler } from './types.js';
import { mapUpstreamError, type ProxyErrorInfo } from './upstream-errors.js';
import { DEFAULT_UPSTREAM_TIMEOUTS, UpstreamPools, type RemoteTarget, type UpstreamTimeouts } from './upstream-pools.js';
import { budgetFromLimit, descriptorLimit } from './connection-limits.js';
import { UpstreamShares, type ShareWaiter } from './upstream-share.js';
import { forwardUpgrade, forwardWebSocketConnect, openUpstream } from './websocket.js';

export type { ProxyHandlerOptions } from './proxy-core.js';

type ClientResponse = (ServerResponse | Http2ServerResponse) & { [kForward]?: ForwardExchange };

const kForward = Symbol('devproxy.forward');

/** Reason given to undici when the client went away; maps to "write nothing". */
const CLIENT_ABORTED: Error = Object.assign(new Error('client closed the connection'), { code: 'DEVPROXY_CLIENT_ABORTED' });

function sendPage(core: ProxyCore, req: ClientRequest, res: ClientResponse, status: number, body: string, json: boolean, route?: Route, corsOrigin?: string, code?: string, begun = 0): void {
  let headers = [
    'content-type', json ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
  ];
  // Readable without the body: HEAD answers have none, and SDKs surface response headers (the
  // Azure SDKs put them in RestError.details).
  if (code !== undefined) headers.push(ERROR_CODE_HEADER, code);
  if (route !== undefined) headers.push(ROUTE_HEADER, route.mode);
  // The worktree's UI must be able to read why devproxy refused its fetch.
  if (corsOrigin !== undefined) headers = withCorsHeaders(headers, corsOrigin, 'replace');
  const out = res as ServerResponse;
  out.writeHead(status, headers);
  if (req.method === 'HEAD') out.end();
  else out.end(body);
  recordExchange(core.options.requestLog, req, route, 'devproxy', status, req.method === 'HEAD' ? 0 : Buffer.byteLength(body), headers, begun);
}

function sendError(core: ProxyCore, req: ClientRequest, res: ClientResponse, info: ProxyErrorInfo, route?: Route, corsOrigin?: string, begun = 0): void {
  const html = wantsHtml(req.headers.accept);
  sendPage(core, req, res, info.status, renderErrorPage(info, html), !html, route, corsOrigin, info.code, begun);
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

/** Sibling hostnames per siblings list, so cookies need no per-request array. */
const siblingHostnames = new WeakMap<readonly SiblingRemote[], string[]>();

/**
 * Rewrites for a remote whose worktree has other remotes: Location pointing at any of them lands
 * on that service's stable host (sign-in redirects through an identity host), and a cookie
 * Domain naming any of them is dropped.
 */
class SiblingRewriter implements ResponseHeaderRewriter {
  readonly #hostnames: string[];

  constructor(
    private readonly remote: RemoteAuthority,
    private readonly siblings: readonly SiblingRemote[],
    private readonly stable: StableOrigin,
  ) {
    let hostnames = siblingHostnames.get(siblings);
    if (hostnames === undefined) {
      hostnames = siblings.map((s) => s.hostname);
      siblingHostnames.set(siblings, hostnames);
    }
    this.#hostnames = hostnames;
  }

  location(value: string): string {
    return rewriteSiblingLocation(value, this.siblings, this.stable.scheme, this.stable.port);
  }

  setCookie(value: string): string {
    return rewriteSetCookie(value, this.remote, this.stable.scheme === 'https', this.#hostnames);
  }
}

function onClientDrain(this: ClientResponse): void {
  this[kForward]?.resumeUpstream();
}

function onClientClose(this: ClientResponse): void {
  this[kForward]?.clientClosed();
}

/** What an exchange sends through: an undici pool, or the asterisk-form sender. */
type Dispatches = Pick<Dispatcher, 'dispatch'>;

/** The client connection a request came on: its h2 session, or its HTTP/1.1 socket. */
function clientConnectionOf(req: ClientRequest): object {
  return req.httpVersionMajor === 2 ? (req as Http2ServerRequest).stream.session ?? req.socket : req.socket;
}

/**
 * One forwarded request: an undici dispatch handler streaming the response into `res`. It holds
 * one slot of its client connection's upstream share from its start until it ends.
 */
class ForwardExchange implements Dispatcher.DispatchHandler, ShareWaiter {
  #abort: ((error?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #clientGone = false;
  #done = false;
  /** Set while an upstream answer is read only to be dropped: a retry or the waking page follows. */
  #dropping: string | undefined;
  #attempts = 1;
  #startedAt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Set once devproxy answered a local app's non-CORS preflight answer itself; its body is drained. */
  #replaced = false;
  #pool: Dispatches | undefined;
  #request: Dispatcher.DispatchOptions | undefined;
  /** For the request log: when the exchange began, what was answered and how many body bytes. */
  readonly #begun: number;
  #status = 0;
  #bytes = 0;
  #responseHeaders: string[] | undefined;
  readonly #client: object;
  /** Holds a slot of the client's upstream share. */
  #holding = false;
  /** Waits in the client's share queue. */
  #queued = false;
  /** Dispatched and not yet completed or failed (undici will call back). */
  #dispatched = false;

  constructor(
    private readonly core: ProxyCore,
    private readonly req: ClientRequest,
    private readonly res: ClientResponse,
    private readonly route: Route,
    private readonly target: Target,
    private readonly rewriter: ResponseHeaderRewriter | undefined,
    private readonly corsOrigin: string | undefined,
    private readonly wake: WakePlan | undefined,
    /** A preflight from the worktree's origin to a local app: answered by devproxy if the app does not answer CORS. */
    private readonly preflight?: Preflight,
  ) {
    res[kForward] = this;
    res.on('drain', onClientDrain);
    res.on('close', onClientClose);
    if (wake !== undefined) this.#startedAt = Date.now();
    this.#begun = exchangeStart(core.options.requestLog);
    this.#client = clientConnectionOf(req);
  }

  /** Sends the request once the client's upstream share has a free slot. */
  start(pool: Dispatches, request: Dispatcher.DispatchOptions): void {
    this.#pool = pool;
    this.#request = request;
    if (this.core.shares.acquire(this.#client, this)) {
      this.#holding = true;
      this.#dispatch();
    } else {
      this.#queued = true;
    }
  }

  admitted(): void {
    this.#queued = false;
    this.#holding = true;
    if (this.#clientGone) this.#release();
    else this.#dispatch();
  }

  #dispatch(): void {
    this.#dispatched = true;
    (this.#pool as Dispatches).dispatch(this.#request as Dispatcher.DispatchOptions, this);
  }

  #release(): void {
    if (!this.#holding) return;
    this.#holding = false;
    this.core.shares.release(this.#client);
  }

  onConnect(abort: (error?: Error) => void): void {
    if (this.#clientGone) abort(CLIENT_ABORTED);
    else this.#abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // node:http already answered the client's 100-continue; other 1xx are not relayed.
    if (statusCode < 200) return true;
    if (this.wake !== undefined && isWakingStatus(statusCode) && (this.wake.navigation || this.#canRetry())) {
      this.#dropping = String(statusCode);
      return true;
    }
    this.#resume = resume;
    this.#status = statusCode;
    const corsOrigin = this.corsOrigin;
    let headers = buildClientHeaders(rawHeaders, this.target.kind, this.rewriter);
    if (corsOrigin !== undefined) {
      if (this.preflight !== undefined && !answeredCors(rawHeaders)) {
        // The app does not speak CORS (an Express app without cors(), a 404/405 to OPTIONS): the page
        // gets the same preflight answer it gets while the service is remote.
        this.#replaced = true;
        this.#done = true;
        const answer = preflightHeaders(corsOrigin, this.preflight.method, this.preflight.headers, this.target.kind);
        (this.res as ServerResponse).writeHead(204, answer);
        this.res.end();
        recordExchange(this.core.options.requestLog, this.req, this.route, this.target.kind, 204, 0, answer, this.#begun);
        return true;
      }
      const mode: CorsMode = this.target.kind === 'local' ? 'unless-answered' : 'replace';
      headers = withCorsHeaders(headers, corsOrigin, mode);
    }
    this.#responseHeaders = headers;
    (this.res as ServerResponse).writeHead(statusCode, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#dropping !== undefined || this.#replaced) return true;
    this.#bytes += chunk.length;
    // false pauses the upstream socket until the client drains (backpressure, no buffering).
    return (this.res as ServerResponse).write(chunk);
  }

  onComplete(trailers: string[] | Buffer[] | null): void {
    this.#dispatched = false;
    if (this.#replaced) {
      this.#release();
      return;
    }
    if (this.#dropping !== undefined) {
      this.#stillWaking(this.#dropping);
      return;
    }
    this.#done = true;
    this.#release();
    // Trailers are relayed because `TE: trailers` was forwarded (gRPC-web, Server-Timing).
    if (trailers !== null && trailers.length > 0) this.res.addTrailers(trailerObject(trailers));
    this.res.end();
    recordExchange(this.core.options.requestLog, this.req, this.route, this.target.kind, this.#status, this.#bytes, this.#responseHeaders, this.#begun);
  }

  onError(error: Error): void {
    this.#dispatched = false;
    if (this.#replaced) {
      this.#release();
      return;
    }
    if (this.#clientGone) {
      this.#done = true;
      // Status 0: the client went away before the answer was complete.
      recordExchange(this.core.options.requestLog, this.req, this.route, this.target.kind, 0, this.#bytes, this.#responseHeaders, this.#begun);
      this.#release();
      return;
    }
    if (this.wake !== undefined && !this.res.headersSent) {
      const code = this.#dropping ?? wakeErrorCode(error);
      if (code !== undefined && (this.wake.navigation || this.#canRetry())) {
        this.#stillWaking(code);
        return;
      }
    }
    this.#done = true;
    this.#release();
    const info = mapUpstreamError(error, { route: this.route, target: this.target, profile: profileOf(this.core, this.route) });
    if (info === null) return;
    this.core.logger?.warn(`${this.route.host}: ${info.message}`);
    if (!this.res.headersSent) sendError(this.core, this.req, this.res, info, this.route, this.corsOrigin, this.#begun);
    else {
      this.res.destroy();
      recordExchange(this.core.options.requestLog, this.req, this.route, this.target.kind, 0, this.#bytes, this.#responseHeaders, this.#begun);
    }
  }

  resumeUpstream(): void {
    this.#resume?.();
  }

  clientClosed(): void {
    if (this.#done) return;
    this.#clientGone = true;
    clearTimeout(this.#retryTimer);
    if (this.#queued) {
      this.#queued = false;
      this.core.shares.cancel(this.#client, this);
    }
    // Between wake attempts nothing is dispatched: no undici callback will give the slot back.
    if (!this.#dispatched) this.#release();
    this.#abort?.(CLIENT_ABORTED);
  }

  #canRetry(): boolean {
    return mayRetryWake(this.wake as WakePlan, this.#attempts, Date.now() - this.#startedAt);
  }

  /** The remote answered `answered` (a 5xx status or a timeout code) while it may be waking. */
  #stillWaking(answered: string): void {
    this.#dropping = undefined;
    this.#abort = undefined;
    const wake = this.wake as WakePlan;
    if (wake.navigation) {
      this.#done = true;
      this.#release();
      this.core.logger?.info(`${this.route.host}: the remote answered ${answered}; serving the waking page`);
      sendWakingPage(this.core, this.req, this.res, this.route, this.target, answered, wake.timeoutMs, this.#begun);
      return;
    }
    const delay = wakeDelayMs(this.#attempts);
    this.#attempts++;
    this.core.logger?.info(`${this.route.host}: the remote answered ${answered}; attempt ${this.#attempts} in ${delay} ms`);
    this.#retryTimer = setTimeout(retryExchange, delay, this);
  }

  /** Sends the request again after a backoff (no body: only bodiless idempotent requests get here). */
  retry(): void {
    this.#retryTimer = undefined;
    if (this.#clientGone) return;
    this.#dispatch();
  }
}

function retryExchange(exchange: ForwardExchange): void {
  exchange.retry();
}

function sendWakingPage(core: ProxyCore, req: ClientRequest, res: ClientResponse, route: Route, target: Target, answered: string, timeoutMs: number, begun: number): void {
  const body = renderWakingPage({
    service: route.service,
    worktree: route.worktree,
    target: target.origin,
    answered,
    timeoutMs,
    retryAfterSeconds: WAKE_PAGE_RETRY_S,
  });
  const headers = [
    'content-type', 'text/html; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
    'retry-after', String(WAKE_PAGE_RETRY_S),
    ROUTE_HEADER, route.mode,
  ];
  (res as ServerResponse).writeHead(503, headers);
  if (req.method === 'HEAD') res.end();
  else res.end(body);
  recordExchange(core.options.requestLog, req, route, 'devproxy', 503, req.method === 'HEAD' ? 0 : Buffer.byteLength(body), headers, begun);
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

/** A CORS preflight: the method and headers the page asked for. */
interface Preflight {
  method: string;
  headers: string | undefined;
}

/** The request's Origin when it is one of the route's worktree origins (and `cors` is on), else undefined. */
function worktreeOriginOf(core: ProxyCore, req: ClientRequest, route: Route): string | undefined {
  const origin = req.headers.origin;
  const hosts = route.corsHosts;
  if (hosts === undefined || origin === undefined) return undefined;
  return isWorktreeOrigin(origin, hosts, core.options.httpPort, core.options.httpsPort) ? origin : undefined;
}

function forward(core: ProxyCore, req: ClientRequest, res: ClientResponse, route: Route, target: Target, context: RequestContext): void {
  const { https, hops } = context;
  const authority = context.authority as string;
  const corsOrigin = worktreeOriginOf(core, req, route);
  let preflight: Preflight | undefined;
  const requestMethod = req.headers['access-control-request-method'];
  if (corsOrigin !== undefined && isPreflight(req.method as string, requestMethod)) {
    const requestHeaders = req.headers['access-control-request-headers'];
    preflight = { method: requestMethod, headers: requestHeaders };
    // A remote's CORS list knows only its cloud UI: devproxy answers for the worktree's origins.
    if (target.kind === 'remote') {
      const answer = preflightHeaders(corsOrigin, requestMethod, requestHeaders, 'remote');
      (res as ServerResponse).writeHead(204, answer);
      res.end();
      req.resume();
      recordExchange(core.options.requestLog, req, route, 'devproxy', 204, 0, answer, 0);
      return;
    }
  }
  if (target.kind === 'remote' && target.hop !== undefined) {
    forwardRemoteHop(core, req, res, route, target, target.hop, context, corsOrigin);
    return;
  }
  const path = upstreamPath(req.method, context.url, target.kind === 'remote' ? target.basePath : '');
  let rewriter: ResponseHeaderRewriter | undefined;
  let upstreamHost = authority;
  if (target.kind === 'remote') {
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
  dispatchExchange(core, new ForwardExchange(core, req, res, route, target, rewriter, corsOrigin, undefined, preflight), target, req, path, headers);
}

function dispatchExchange(core: ProxyCore, exchange: ForwardExchange, target: Target, req: ClientRequest, path: string, headers: string[]): void {
  let pool;
  try {
    pool = core.pools.poolFor(target);
  } catch (error) {
    exchange.onError(error as Error);
    return;
  }
  const request: Dispatcher.DispatchOptions = { method: req.method as Dispatcher.HttpMethod, path, headers, body: hasBody(req) ? (req as IncomingMessage) : null };
  // undici closes the connection after every HEAD (against servers that send a body anyway), so
  // the next request to an HTTPS remote paid a new TLS handshake; the remotes devproxy talks to
  // (Azure front ends, Node, dev servers) frame HEAD answers correctly.
  if (request.method === 'HEAD') request.reset = false;
  // undici sends only origin-form and absolute-form targets; `OPTIONS *` goes out by node:http.
  exchange.start(path === '*' ? new AsteriskDispatcher(core, target) : pool, request);
}

/**
 * Sends one request with the asterisk-form target (`OPTIONS *`) on a connection of its own and
 * drives the exchange's undici handler with the answer, so errors, backpressure and client
 * aborts take the same path as every other request.
 */
class AsteriskDispatcher {
  constructor(
    private readonly core: ProxyCore,
    private readonly target: Target,
  ) {}

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const headers: Record<string, string> = {};
    const flat = options.headers as string[];
    for (let i = 0; i < flat.length; i += 2) headers[flat[i] as string] = flat[i + 1] as string;
    let upstream: http.ClientRequest;
    try {
      upstream = openUpstream(this.core, this.target, options.method, '*', headers);
    } catch (error) {
      handler.onError?.(error as Error);
      return true;
    }
    let failed = false;
    const fail = (error: Error): void => {
      if (failed) return;
      failed = true;
      upstream.destroy();
      handler.onError?.(error);
    };
    upstream.setTimeout(this.core.timeouts.headersTimeoutMs, () => fail(Object.assign(new Error('upstream did not answer OPTIONS *'), { code: 'UND_ERR_HEADERS_TIMEOUT' })));
    upstream.on('error', fail);
    upstream.on('response', (response: IncomingMessage) => {
      upstream.setTimeout(0);
      const resume = (): void => {
        response.resume();
      };
      handler.onHeaders?.(response.statusCode ?? 502, response.rawHeaders.map((value) => Buffer.from(value, 'latin1')), resume, response.statusMessage ?? '');
      response.on('data', (chunk: Buffer) => {
        if (handler.onData?.(chunk) === false) response.pause();
      });
      response.on('end', () => {
        if (!failed) handler.onComplete?.(response.rawTrailers.length > 0 ? response.rawTrailers : null);
      });
      response.on('error', fail);
    });
    handler.onConnect?.((reason?: Error) => fail(reason ?? new Error('aborted')));
    const body = options.body as IncomingMessage | null | undefined;
    if (body) body.pipe(upstream);
    else upstream.end();
    return true;
  }
}

/** Answers a request devproxy refuses or answers itself on the remote's behalf; the body is drained. */
function refuse(core: ProxyCore, req: ClientRequest, res: ClientResponse, info: ProxyErrorInfo, route: Route, corsOrigin?: string): void {
  sendError(core, req, res, info, route, corsOrigin);
  req.resume();
}

/**
 * A remote route with hop features: the read-only policy (its refusal readable by the
 * worktree's origins), auth and worktree headers, sibling-aware rewriting and wake.
 */
function forwardRemoteHop(
  core: ProxyCore,
  req: ClientRequest,
  res: ClientResponse,
  route: Route,
  target: RemoteTarget,
  hop: RemoteHop,
  context: RequestContext,
  corsOrigin: string | undefined,
): void {
  const method = req.method as string;
  const { https, hops } = context;
  const authority = context.authority as string;
  const refused = refusedWrite(route, target, hop, method, context.url, worktreePathOf(core, route));
  if (refused !== undefined) {
    core.logger?.info(`${route.host}: ${method} refused (${refused.why})`);
    refuse(core, req, res, refused.info, route, corsOrigin);
    return;
  }
  const stable = stableOriginFor(core, route.host, https);
  const rewriter = hop.siblings !== undefined ? new SiblingRewriter(target, hop.siblings, stable) : new RemoteRewriter(target, stable);
  const wake = wakePlanFor(hop, method, req.headers.accept, hasBody(req));
  const path = upstreamPath(method, context.url, target.basePath);
  const send = (extra: readonly string[]): void => {
    const headers = buildUpstreamHeaders(req.rawHeaders, {
      host: target.authority,
      forwardedFor: req.socket?.remoteAddress ?? '',
      forwardedHost: authority,
      forwardedProto: https ? 'https' : 'http',
      hops,
      extra,
    });
    dispatchExchange(core, new ForwardExchange(core, req, res, route, target, rewriter, corsOrigin, wake), target, req, path, headers);
  };
  let extra: string[] | Promise<string[]>;
  try {
    extra = core.hopHeaders.headersFor(route, target, hop, authority, lendsCredentials(core, req, route, hop));
  } catch (error) {
    hopFailed(core, req, res, route, error, corsOrigin);
    return;
  }
  if (Array.isArray(extra)) {
    send(extra);
    return;
  }
  extra.then(
    (resolved) => {
      if (!clientGone(res)) send(resolved);
    },
    (error: unknown) => hopFailed(core, req, res, route, error, corsOrigin),
  );
}

/** True once the client went away (HTTP/2 compat responses only tell through their stream). */
function clientGone(res: ClientResponse): boolean {
  const stream = (res as Http2ServerResponse).stream as Http2ServerResponse['stream'] | undefined;
  return stream === undefined ? (res as ServerResponse).destroyed : stream.destroyed;
}

function hopFailed(core: ProxyCore, req: ClientRequest, res: ClientResponse, route: Route, error: unknown, corsOrigin: string | undefined): void {
  const info = hopFailure(route, error);
  core.logger?.warn(`${route.host}: ${info.message}`);
  if (res.headersSent || clientGone(res)) return;
  refuse(core, req, res, info, route, corsOrigin);
}

/**
 * True when a request's Transfer-Encoding has a coding besides `chunked` (`gzip, chunked`): undici
 * can only send a body chunked or by length, so forwarding it would silently drop the coding.
 */
function hasForeignTransferCoding(value: string | undefined): boolean {
  if (value === undefined) return false;
  for (const coding of value.split(',')) if (coding.trim().toLowerCase() !== 'chunked') return true;
  return false;
}

/** The 501 for a transfer coding devproxy cannot forward (as Go's and so Caddy's and Traefik's servers answer). */
const TRANSFER_CODING_REFUSED: ProxyErrorInfo = {
  status: 501,
  code: 'DEVPROXY_ERR_TRANSFER_CODING',
  message: 'devproxy forwards request bodies only with `Transfer-Encoding: chunked` or a Content-Length; a transfer coding such as gzip would be lost on the way.',
  hint: ERROR_HINTS.DEVPROXY_ERR_TRANSFER_CODING,
};

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
    withheldNotices: new Set(),
    shares: new UpstreamShares(options.maxUpstreamRequests ?? budgetFromLimit(descriptorLimit()).upstreamRequests),
    hopHeaders: new RemoteHopHeaders(options.env ?? process.env, new AzureTokenCache(options.azureCredentials)),
  };
  return {
    handleRequest(req, res) {
      if (req.httpVersionMajor === 1 && hasForeignTransferCoding(req.headers['transfer-encoding'])) {
        sendError(core, req, res, TRANSFER_CODING_REFUSED);
        req.resume();
        return;
      }
      const context = resolveRequest(core, req);
      const outcome = context.outcome;
      if (outcome.kind === 'route' && !context.https && core.options.redirectToHttps && core.options.httpsPort !== undefined) {
        // 308 keeps the method and body, so a form POST survives the redirect too.
        const headers = ['location', `https://${outcome.host}:${core.options.httpsPort}${context.url}`, 'content-length', '0'];
        (res as ServerResponse).writeHead(308, headers);
        res.end();
        req.resume();
        recordExchange(core.options.requestLog, req, outcome.route, 'devproxy', 308, 0, headers, 0);
      } else if (outcome.kind === 'route') {
        forward(core, req, res, outcome.route, outcome.target, context);
      } else if (outcome.kind === 'landing') {
        const html = wantsHtml(req.headers.accept);
        sendPage(core, req, res, 200, renderLandingPage(landingEntries(core, context), html), !html);
        req.resume();
      } else {
        const refused = refusalOf(core, context, outcome);
        sendError(core, req, res, refused.info, refused.route);
        req.resume();
      }
    },
    handleUpgrade(req, socket, head) {
      forwardUpgrade(core, req, socket, head);
    },
    handleWebSocketConnect(req) {
      forwardWebSocketConnect(core, req);
    },
    close() {
      for (const socket of core.tunnels) socket.destroy();
      core.tunnels.clear();
      return core.pools.close();
    },
  };
}
