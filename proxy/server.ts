/**
 * The proxy engine: `createProxyHandler` turns a request for `<service>.<worktree>.localhost`
 * into a forwarded exchange (`exchange.ts`) with the route's local or remote target (HTTP/1.1,
 * HTTP/2 compat and h2 front requests alike); the listeners (`http-listener.ts`, `https-listener.ts`)
 * serve it.
 */
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import { ERROR_HINTS } from '../errors.js';
import type { RemoteHop, Route, Target } from '../router/types.js';
import { AzureTokenCache } from './azure-token.js';
import { isPreflight, isWorktreeOrigin, type Preflight } from './cors.js';
import { renderLandingPage, wantsHtml } from './error-pages.js';
import { forwardExchange } from './exchange.js';
import type { ResponseHeaderRewriter } from './forward-headers.js';
import { sendError, sendPage, sendPreflight, type ClientResponse } from './own-answers.js';
import {
  stableOriginFor,
  upstreamPath,
  worktreePathOf,
  type ClientRequest,
  type ProxyCore,
  type ProxyHandlerOptions,
} from './proxy-core.js';
import { landingEntries, refusalOf, resolveRequest, upstreamHeadersFor, type RequestContext } from './request-context.js';
import { hopFailure, refusedWrite, RemoteHopHeaders, sendWithHopHeaders, wakePlanFor } from './remote-hop.js';
import { rewriteLocation, rewriteSetCookie, rewriteSiblingLocation, type RemoteAuthority, type SiblingRemote, type StableOrigin } from './response-rewrite.js';
import { recordExchange } from './request-log.js';
import type { ProxyHandler } from './types.js';
import type { ProxyErrorInfo } from './upstream-errors.js';
import { DEFAULT_UPSTREAM_TIMEOUTS, UpstreamPools, type RemoteTarget, type UpstreamTimeouts } from './upstream-pools.js';
import { budgetFromLimit, descriptorLimit } from './connection-limits.js';
import { UpstreamShares } from './upstream-share.js';
import { forwardUpgrade, forwardWebSocketConnect } from './websocket.js';

export type { ProxyHandlerOptions } from './proxy-core.js';

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

/** The request's Origin when it is one of the route's worktree origins (and `cors` is on), else undefined. */
function worktreeOriginOf(core: ProxyCore, context: RequestContext, route: Route): string | undefined {
  const origin = context.headers.origin;
  const hosts = route.corsHosts;
  if (hosts === undefined || origin === undefined) return undefined;
  return isWorktreeOrigin(origin, hosts, core.options.httpPort, core.options.httpsPort) ? origin : undefined;
}

function forward(core: ProxyCore, req: ClientRequest, res: ClientResponse, route: Route, target: Target, context: RequestContext): void {
  const authority = context.authority as string;
  const corsOrigin = worktreeOriginOf(core, context, route);
  let preflight: Preflight | undefined;
  const requestMethod = context.headers['access-control-request-method'];
  if (corsOrigin !== undefined && isPreflight(context.method, requestMethod)) {
    const requestHeaders = context.headers['access-control-request-headers'];
    preflight = { method: requestMethod, headers: requestHeaders };
    // A remote's CORS list knows only its cloud UI: devproxy answers for the worktree's origins.
    if (target.kind === 'remote') {
      sendPreflight(core, context, res, route, corsOrigin, preflight, 'remote', 'devproxy');
      req.resume();
      return;
    }
  }
  if (target.kind === 'remote' && target.hop !== undefined) {
    forwardRemoteHop(core, req, res, route, target, target.hop, context, corsOrigin);
    return;
  }
  const path = upstreamPath(context.method, context.url, target.kind === 'remote' ? target.basePath : '');
  let rewriter: ResponseHeaderRewriter | undefined;
  let upstreamHost = authority;
  if (target.kind === 'remote') {
    upstreamHost = target.authority;
    rewriter = new RemoteRewriter(target, stableOriginFor(core, route.host, context.https));
  }
  const headers = upstreamHeadersFor(context, upstreamHost);
  forwardExchange(core, req, context, res, { route, target, path, headers, rewriter, corsOrigin, wake: undefined, preflight });
}

/** Answers a request devproxy refuses or answers itself on the remote's behalf; the body is drained. */
function refuse(core: ProxyCore, req: ClientRequest, context: RequestContext, res: ClientResponse, info: ProxyErrorInfo, route: Route, corsOrigin?: string): void {
  sendError(core, context, res, info, route, corsOrigin);
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
  const method = context.method;
  const refused = refusedWrite(route, target, hop, method, context.url, worktreePathOf(core, route));
  if (refused !== undefined) {
    core.logger?.info(`${route.host}: ${method} refused (${refused.why})`);
    refuse(core, req, context, res, refused.info, route, corsOrigin);
    return;
  }
  const stable = stableOriginFor(core, route.host, context.https);
  const rewriter = hop.siblings !== undefined ? new SiblingRewriter(target, hop.siblings, stable) : new RemoteRewriter(target, stable);
  const wake = wakePlanFor(hop, method, context.headers.accept, context.hasBody);
  const path = upstreamPath(method, context.url, target.basePath);
  const send = (extra: readonly string[]): void => {
    const headers = upstreamHeadersFor(context, target.authority, extra);
    forwardExchange(core, req, context, res, { route, target, path, headers, rewriter, corsOrigin, wake, preflight: undefined });
  };
  sendWithHopHeaders(
    core,
    context,
    route,
    target,
    hop,
    send,
    (error) => hopFailed(core, req, context, res, route, error, corsOrigin),
    () => clientGone(res),
  );
}

/** True once the client went away (HTTP/2 compat responses only tell through their stream). */
function clientGone(res: ClientResponse): boolean {
  const stream = (res as Http2ServerResponse).stream as Http2ServerResponse['stream'] | undefined;
  return stream === undefined ? (res as ServerResponse).destroyed : stream.destroyed;
}

function hopFailed(core: ProxyCore, req: ClientRequest, context: RequestContext, res: ClientResponse, route: Route, error: unknown, corsOrigin: string | undefined): void {
  const info = hopFailure(route, error);
  core.logger?.warn(`${route.host}: ${info.message}`);
  if (res.headersSent || clientGone(res)) return;
  refuse(core, req, context, res, info, route, corsOrigin);
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
      const context = resolveRequest(core, req);
      if (!context.h2 && hasForeignTransferCoding(context.headers['transfer-encoding'])) {
        sendError(core, context, res, TRANSFER_CODING_REFUSED);
        req.resume();
        return;
      }
      const outcome = context.outcome;
      if (outcome.kind === 'route' && !context.https && core.options.redirectToHttps && core.options.httpsPort !== undefined) {
        // 308 keeps the method and body, so a form POST survives the redirect too.
        const headers = ['location', `https://${outcome.host}:${core.options.httpsPort}${context.url}`, 'content-length', '0'];
        (res as ServerResponse).writeHead(308, headers).end();
        req.resume();
        recordExchange(core.options.requestLog, context, outcome.route, 'devproxy', 308, 0, headers, 0);
      } else if (outcome.kind === 'route') {
        forward(core, req, res, outcome.route, outcome.target, context);
      } else if (outcome.kind === 'landing') {
        const html = wantsHtml(context.headers.accept);
        sendPage(core, context, res, 200, renderLandingPage(landingEntries(core, context), html), !html);
        req.resume();
      } else {
        const refused = refusalOf(core, context, outcome);
        sendError(core, context, res, refused.info, refused.route);
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
