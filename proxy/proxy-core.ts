/**
 * What the HTTP and WebSocket paths share: the engine state and small readers of a request and
 * its route (the routing decision itself is `router/resolve.ts`).
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { H2Request } from './h2-front.js';
import type { Duplex } from 'node:stream';
import type { Route } from '../router/types.js';
import type { CredentialChainFactory } from './azure-token.js';
import type { FrontRequest } from './h1-front.js';
import type { RemoteHopHeaders } from './remote-hop.js';
import type { StableOrigin } from './response-rewrite.js';
import type { Logger } from '../logger.js';
import type { ProxyOptions } from './types.js';
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

/** A request of either listener: node's HTTP/1.1 or h2 compat request, the HTTP/1.1 front's or the h2 front's. */
export type ClientRequest = IncomingMessage | Http2ServerRequest | FrontRequest | H2Request;

/** An h2 request, compat or the h2 front's. */
export type H2ClientRequest = Http2ServerRequest | H2Request;

/** Internal state shared by the request path and the WebSocket path. */
export interface ProxyCore {
  readonly options: ProxyHandlerOptions;
  readonly pools: UpstreamPools;
  readonly timeouts: UpstreamTimeouts;
  readonly logger: Logger | undefined;
  /** Client sockets of live upgraded (WebSocket) connections, cut by `close()`. */
  readonly tunnels: Set<Duplex>;
  /** Auth, worktree header and X-Original-Host of remote hops. */
  readonly hopHeaders: RemoteHopHeaders;
  /** Each client connection's share of the upstream requests in flight. */
  readonly shares: UpstreamShares;
  /** `host origin` pairs whose withheld credentials were logged (bounded). */
  readonly withheldNotices: Set<string>;
}

/** Where the client reaches `host` on devproxy, with the scheme it used. */
export function stableOriginFor(core: ProxyCore, host: string, https: boolean): StableOrigin {
  return https
    ? { scheme: 'https', host, port: core.options.httpsPort ?? 443 }
    : { scheme: 'http', host, port: core.options.httpPort };
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
