/**
 * What the HTTP and WebSocket paths share: the engine state, and the routing rules that turn a
 * Host / `:authority` into a route or into a page devproxy answers itself.
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { leafCovers } from '../certs/store.js';
import { ERROR_HINTS } from '../errors.js';
import type { RemoteHop, Route, RoutingTable, Target } from '../router/types.js';
import type { CredentialChainFactory } from './azure-token.js';
import type { HostEntry } from './error-pages.js';
import { MAX_PROXY_HOPS } from './forward-headers.js';
import { isLocalhostName, parseHost } from './host-header.js';
import { mayLendCredentials, type RemoteHopHeaders } from './remote-hop.js';
import { stableOriginUrl, type StableOrigin } from './response-rewrite.js';
import type { ProxyLogger, ProxyOptions } from './types.js';
import type { ProxyErrorInfo } from './upstream-errors.js';
import type { UpstreamPools, UpstreamTimeouts } from './upstream-pools.js';
import type { UpstreamShares } from './upstream-share.js';

/** Options of `createProxyHandler`: the shared {@link ProxyOptions} plus engine tuning. */
export interface ProxyHandlerOptions extends ProxyOptions {
  /** Upstream timeouts; defaults in `DEFAULT_UPSTREAM_TIMEOUTS` (connect 10 s, headers 60 s, body idle 5 min). */
  upstreamTimeouts?: Partial<UpstreamTimeouts>;
  /** Environment `${env:…}` references in remote auth resolve against; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Credentials tried for `auth.azure` tokens; default `defaultCredentialChain` (environment, Azure CLI, Azure Developer CLI). */
  azureCredentials?: CredentialChainFactory;
  /** Upstream requests in flight across every route; default: half of the descriptors left after a reserve (`budgetFromLimit`). */
  maxUpstreamRequests?: number;
}

/** A request of either listener. */
export type ClientRequest = IncomingMessage | Http2ServerRequest;

/** Internal state shared by the request path and the WebSocket path. */
export interface ProxyCore {
  readonly options: ProxyHandlerOptions;
  readonly pools: UpstreamPools;
  readonly timeouts: UpstreamTimeouts;
  readonly logger: ProxyLogger | undefined;
  /** Client sockets of live upgraded (WebSocket) connections, cut by `close()`. */
  readonly tunnels: Set<Duplex>;
  /** Auth, worktree header and X-Original-Host of remote hops. */
  readonly hopHeaders: RemoteHopHeaders;
  /** Each client connection's share of the upstream requests in flight. */
  readonly shares: UpstreamShares;
  /** `host origin` pairs whose withheld credentials were logged (bounded). */
  readonly withheldNotices: Set<string>;
}

/** What a Host header resolved to. */
export type HostResolution =
  | { kind: 'route'; route: Route; target: Target; host: string }
  | { kind: 'landing' }
  | { kind: 'page'; info: ProxyErrorInfo; route?: Route };

/** True when the client reached devproxy over TLS. */
export function isHttpsRequest(req: ClientRequest): boolean {
  return (req.socket as TLSSocket | null)?.encrypted === true;
}

/**
 * The TLS connection a request came on, as far as the 421 check needs it: `sni` is the name the
 * client sent (undefined without SNI). Undefined for plain HTTP.
 */
export interface TlsOrigin {
  sni: string | undefined;
}

/** The SNI of the request's TLS connection ({@link TlsOrigin}), or undefined over plain HTTP. */
export function tlsOriginOf(req: ClientRequest): TlsOrigin | undefined {
  const socket = req.socket as (TLSSocket & { servername?: string | false }) | null;
  if (socket?.encrypted !== true) return undefined;
  return { sni: typeof socket.servername === 'string' && socket.servername !== '' ? socket.servername : undefined };
}

/** Where the client reaches `host` on devproxy, with the scheme it used. */
export function stableOriginFor(core: ProxyCore, host: string, https: boolean): StableOrigin {
  return https
    ? { scheme: 'https', host, port: core.options.httpsPort ?? 443 }
    : { scheme: 'http', host, port: core.options.httpPort };
}

/** Stable URLs of the known hosts, sorted, for the 404 page. */
function knownHostUrls(core: ProxyCore, table: RoutingTable, https: boolean): string[] {
  return [...table.routes.keys()].sort().map((host) => `${stableOriginUrl(stableOriginFor(core, host, https))}/`);
}

/** The hosts of the table for the landing page, sorted. */
export function hostEntries(core: ProxyCore, table: RoutingTable, https: boolean): HostEntry[] {
  return [...table.routes.values()]
    .sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0))
    .map((route) => {
      const entry: HostEntry = {
        host: route.host,
        url: `${stableOriginUrl(stableOriginFor(core, route.host, https))}/`,
        worktree: route.worktree,
        service: route.service,
        mode: route.mode,
      };
      if (route.problem !== undefined) entry.problem = route.problem.message;
      return entry;
    });
}

/**
 * Applies the routing rules to a Host / `:authority` value: bad or missing → 400, names other
 * than `localhost`/`*.localhost` (DNS rebinding) → 421, a name the TLS connection's certificate
 * does not cover → 421, `localhost` → landing page, unknown → 404 listing the known hosts, route
 * with a problem → 502, loop → 508.
 */
export function resolveHost(core: ProxyCore, authority: string | undefined, https: boolean, hops: number, tls?: TlsOrigin): HostResolution {
  const parsed = parseHost(authority);
  if (!parsed.ok) {
    if (parsed.reason === 'ip-literal') {
      return {
        kind: 'page',
        info: {
          status: 421,
          code: 'DEVPROXY_ERR_MISDIRECTED_HOST',
          message: `devproxy does not answer for the address ${String(authority)}.`,
          hint: ERROR_HINTS.DEVPROXY_ERR_MISDIRECTED_HOST,
        },
      };
    }
    return {
      kind: 'page',
      info: {
        status: 400,
        code: 'DEVPROXY_ERR_BAD_HOST',
        message: parsed.reason === 'missing' ? 'The request has no Host header.' : 'The Host header is not a valid hostname.',
        hint: ERROR_HINTS.DEVPROXY_ERR_BAD_HOST,
      },
    };
  }
  const host = parsed.host;
  if (!isLocalhostName(host)) {
    return {
      kind: 'page',
      info: {
        status: 421,
        code: 'DEVPROXY_ERR_MISDIRECTED_HOST',
        message: `devproxy does not serve ${host}: only localhost names are routed, to keep other sites (DNS rebinding) out.`,
        hint: ERROR_HINTS.DEVPROXY_ERR_MISDIRECTED_HOST,
      },
    };
  }
  // Browsers reuse an h2 connection for every name its certificate covers (RFC 9113 §9.1.1);
  // a request for any other name on it must be refused so the client opens the right one.
  if (tls !== undefined && !leafCovers(tls.sni, host)) {
    return {
      kind: 'page',
      info: {
        status: 421,
        code: 'DEVPROXY_ERR_MISDIRECTED_REQUEST',
        message: `This connection was opened for ${tls.sni ?? 'an IP address (no SNI)'}, and its certificate does not cover ${host}, so devproxy does not answer for ${host} on it.`,
        hint: ERROR_HINTS.DEVPROXY_ERR_MISDIRECTED_REQUEST,
      },
    };
  }
  if (host === 'localhost') return { kind: 'landing' };
  const table = core.options.getTable();
  const route = table.routes.get(host);
  if (route === undefined) {
    return {
      kind: 'page',
      info: {
        status: 404,
        code: 'DEVPROXY_ERR_UNKNOWN_HOST',
        message: `No service is routed at ${host}.`,
        hint: ERROR_HINTS.DEVPROXY_ERR_UNKNOWN_HOST,
        knownHosts: knownHostUrls(core, table, https),
      },
    };
  }
  const target = route.target;
  if (target === undefined) {
    return {
      kind: 'page',
      route,
      info: {
        status: 502,
        code: 'DEVPROXY_ERR_ROUTE_UNAVAILABLE',
        message: route.problem?.message ?? `${route.host} has no target.`,
        hint: route.problem?.hint ?? ERROR_HINTS.DEVPROXY_ERR_ROUTE_UNAVAILABLE,
        service: route.service,
        worktree: route.worktree,
      },
    };
  }
  if (hops >= MAX_PROXY_HOPS) {
    return {
      kind: 'page',
      route,
      info: {
        status: 508,
        code: 'DEVPROXY_ERR_LOOP_DETECTED',
        message: `The request for ${host} went through devproxy ${hops} times.`,
        hint: ERROR_HINTS.DEVPROXY_ERR_LOOP_DETECTED,
        service: route.service,
        worktree: route.worktree,
      },
    };
  }
  return { kind: 'route', route, target, host };
}

/** The worktree's folder, for the profile-file fix on the read-only page. */
export function worktreePathOf(core: ProxyCore, route: Route): string | undefined {
  return core.options.getTable().worktrees.find((w) => w.slug === route.worktree)?.path;
}

/** The worktree's effective profile, for the `devproxy use` fix on error pages. */
export function profileOf(core: ProxyCore, route: Route): string | undefined {
  return core.options.getTable().worktrees.find((w) => w.slug === route.worktree)?.profile;
}

/** Origin-form path of the request; absolute-form (`GET http://host/path`) is reduced to its path. */
export function requestPath(url: string | undefined): string {
  if (url === undefined || url === '') return '/';
  if (url.charCodeAt(0) === 47 /* '/' */) return url;
  try {
    const parsed = new URL(url);
    return `${parsed.pathname}${parsed.search}`;
  } catch {
    return '/';
  }
}

/**
 * The path sent upstream: the request's origin-form path under `basePath`, or `*` as it came for
 * a server-wide `OPTIONS *` (RFC 9112 §3.2.4), which has no path to prefix.
 */
export function upstreamPath(method: string | undefined, url: string | undefined, basePath: string): string {
  if (url === '*' && method === 'OPTIONS') return '*';
  return basePath + requestPath(url);
}

/** A single-valued request header (node gives an array only for the few it never joins). */
function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Distinct `host origin` pairs logged when credentials are withheld; later ones are not, so a hostile page cannot fill the log. */
const MAX_WITHHELD_NOTICES = 100;

/**
 * Whether the remote hop may add its credentials to `req` ({@link mayLendCredentials}); the first
 * time a page of another origin is refused them on a host, the log says so (the remote's 401 is
 * otherwise a puzzle).
 */
export function lendsCredentials(core: ProxyCore, req: ClientRequest | IncomingMessage, route: Route, hop: RemoteHop): boolean {
  const origin = req.headers.origin;
  const lend = mayLendCredentials(origin, headerValue(req.headers['sec-fetch-site']), hop.worktreeHosts, core.options.httpPort, core.options.httpsPort);
  if (!lend && hop.auth !== undefined) {
    const key = `${route.host} ${origin ?? 'cross-site'}`;
    if (!core.withheldNotices.has(key) && core.withheldNotices.size < MAX_WITHHELD_NOTICES) {
      core.withheldNotices.add(key);
      core.logger?.info(`${route.host}: remote credentials withheld from a request of ${origin ?? 'a cross-site page'}, which is not a page of worktree \`${route.worktree}\``);
    }
  }
  return lend;
}

/** The Host / `:authority` of a request. */
export function requestAuthority(req: ClientRequest): string | undefined {
  if (req.httpVersionMajor === 2) {
    const authority = req.headers[':authority'];
    if (typeof authority === 'string') return authority;
  }
  return req.headers.host;
}

