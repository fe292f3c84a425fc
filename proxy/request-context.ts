/**
 * The request entry of both listeners and of WebSocket upgrades: each request is read and
 * resolved once ({@link resolveRequest}) into a context the rest of the request path reads, and
 * every outcome devproxy answers itself maps to its page here ({@link refusalOf}).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ServedLeaf } from '../certs/store.js';
import { ERROR_HINTS } from '../errors.js';
import { resolve, type Resolution } from '../router/resolve.js';
import type { Route, RoutingTable } from '../router/types.js';
import type { HostEntry } from './error-pages.js';
import { buildUpstreamHeaders, readHops } from './forward-headers.js';
import { stableOriginFor, type ClientRequest, type H2ClientRequest, type ProxyCore } from './proxy-core.js';
import { stableOriginUrl } from './response-rewrite.js';
import type { ProxyErrorInfo } from './upstream-errors.js';

/**
 * One request as read at its entry, with the routing decision for it. The request path reads the
 * request's facts here rather than on the request: requests come as four classes (node's and the
 * fronts', per protocol), and every function reading them all runs polymorphic, slower for each
 * protocol once the daemon served the others; made in one place, contexts all share one shape.
 */
export interface RequestContext {
  /** Host / `:authority` as the client sent it; undefined without one. */
  readonly authority: string | undefined;
  /** The request-target as sent (`req.url`), `/` when node gives none. */
  readonly url: string;
  /** The method as sent, '' when node gives none. */
  readonly method: string;
  /** The request came over HTTP/2 (its answer is an h2 one). */
  readonly h2: boolean;
  /** The request's header object (node's, or the front's). */
  readonly headers: IncomingHttpHeaders;
  /** The header fields as sent, flat. */
  readonly rawHeaders: string[];
  /** The request carries a body: HTTP/2 says so per stream, HTTP/1.1 by its framing headers. */
  readonly hasBody: boolean;
  /** The client connection the request came on (its h2 session or HTTP/1.1 socket), whose upstream share it uses. */
  readonly connection: object;
  /** The client reached devproxy over TLS. */
  readonly https: boolean;
  /** The client socket's address ('' once it is gone), for X-Forwarded-For. */
  readonly clientAddress: string;
  /** Times the request already went through devproxy (`x-devproxy-hops`). */
  readonly hops: number;
  /** The routing table the request was resolved against: pages list the same routes. */
  readonly table: RoutingTable;
  readonly outcome: Resolution;
}

/**
 * The request's headers for its upstream at `host` (see `buildUpstreamHeaders`), with the
 * forwarded fields this context knows: the client's address, the authority it addressed, its
 * scheme and the hop count. `extra` and `upgrade` are the remote hop's headers and a WebSocket's
 * protocol. Only for a routed request, which always named a host.
 */
export function upstreamHeadersFor(context: RequestContext, host: string, extra?: readonly string[], upgrade?: string): string[] {
  return buildUpstreamHeaders(context.rawHeaders, {
    host,
    forwardedFor: context.clientAddress,
    forwardedHost: context.authority as string,
    forwardedProto: context.https ? 'https' : 'http',
    hops: context.hops,
    extra,
    upgrade,
  });
}

/** An outcome devproxy answers with an error page. */
export type Refusal = Exclude<Resolution, { kind: 'route' } | { kind: 'landing' }>;

/** The leaf each HTTP/1.1 TLS connection was served, by its socket. */
const servedLeaves = new WeakMap<object, ServedLeaf>();

/** What every stream of one h2 session shares: its transport, address and leaf. */
interface SessionFacts {
  readonly https: boolean;
  readonly address: string;
  readonly tls: ServedLeaf | undefined;
}

/** By h2 session: an h2 request's `socket` is a Proxy made per stream whose every read is a trap, so they are read once per session. */
const sessionFacts = new WeakMap<object, SessionFacts>();

type ClientSocket = (TLSSocket & { servername?: string | false }) | null;

/** The leaf a TLS connection was served: the SNI is the connection's, worked out at its first request. */
function servedLeaf(socket: NonNullable<ClientSocket>): ServedLeaf {
  const servername = socket.servername;
  return new ServedLeaf(typeof servername === 'string' && servername !== '' ? servername : undefined);
}

function factsOf(socket: ClientSocket): SessionFacts {
  const https = socket?.encrypted === true;
  return { https, address: socket?.remoteAddress ?? '', tls: https ? servedLeaf(socket as NonNullable<ClientSocket>) : undefined };
}

function h2FactsOf(req: H2ClientRequest): SessionFacts {
  const session: object | undefined = req.stream.session;
  if (session === undefined) return factsOf(req.socket as unknown as ClientSocket);
  let facts = sessionFacts.get(session);
  if (facts === undefined) {
    facts = factsOf(req.socket as unknown as ClientSocket);
    sessionFacts.set(session, facts);
  }
  return facts;
}

/** True when an HTTP/1.1 request's framing headers announce a body. */
function announcesBody(headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return (length !== undefined && length !== '0') || headers['transfer-encoding'] !== undefined;
}

/** Reads a request's authority, target, scheme, client address, hop count and SNI once, and resolves it against the current table. */
export function resolveRequest(core: ProxyCore, req: ClientRequest): RequestContext {
  const headers = req.headers;
  const rawHeaders = req.rawHeaders;
  const h2 = req.httpVersionMajor === 2;
  const h2Authority = h2 ? headers[':authority'] : undefined;
  const authority = typeof h2Authority === 'string' ? h2Authority : headers.host;
  const hops = readHops(rawHeaders);
  const table = core.options.getTable();
  let https: boolean;
  let clientAddress: string;
  let tls: ServedLeaf | undefined;
  let connection: object;
  let hasBody: boolean;
  if (h2) {
    const stream = (req as H2ClientRequest).stream;
    ({ https, address: clientAddress, tls } = h2FactsOf(req as H2ClientRequest));
    connection = stream.session ?? req.socket;
    hasBody = !stream.endAfterHeaders;
  } else {
    const socket = req.socket as ClientSocket;
    connection = socket as object;
    hasBody = announcesBody(headers);
    https = socket?.encrypted === true;
    clientAddress = socket?.remoteAddress ?? '';
    if (https) {
      tls = servedLeaves.get(socket as object);
      if (tls === undefined) {
        tls = servedLeaf(socket as NonNullable<ClientSocket>);
        servedLeaves.set(socket as object, tls);
      }
    }
  }
  return {
    authority,
    url: req.url ?? '/',
    method: req.method ?? '',
    h2,
    headers,
    rawHeaders,
    hasBody,
    connection,
    https,
    clientAddress,
    hops,
    table,
    outcome: resolve(table, authority, hops, tls),
  };
}

/** The page devproxy answers for a refused request, and the route it concerns (for `x-devproxy-route`). */
export function refusalOf(core: ProxyCore, context: RequestContext, refusal: Refusal): { info: ProxyErrorInfo; route?: Route } {
  switch (refusal.kind) {
    case 'bad-host':
      return {
        info: {
          status: 400,
          code: 'DEVPROXY_ERR_BAD_HOST',
          message: refusal.missing ? 'The request has no Host header.' : 'The Host header is not a valid hostname.',
          hint: ERROR_HINTS.DEVPROXY_ERR_BAD_HOST,
        },
      };
    case 'misdirected':
      if (refusal.why === 'other-certificate') {
        return {
          info: {
            status: 421,
            code: 'DEVPROXY_ERR_MISDIRECTED_REQUEST',
            message: `This connection was opened for ${refusal.sni ?? 'an IP address (no SNI)'}, and its certificate does not cover ${refusal.name}, so devproxy does not answer for ${refusal.name} on it.`,
            hint: ERROR_HINTS.DEVPROXY_ERR_MISDIRECTED_REQUEST,
          },
        };
      }
      return {
        info: {
          status: 421,
          code: 'DEVPROXY_ERR_MISDIRECTED_HOST',
          message:
            refusal.why === 'ip-literal'
              ? `devproxy does not answer for the address ${refusal.name}.`
              : `devproxy does not serve ${refusal.name}: only localhost names are routed, to keep other sites (DNS rebinding) out.`,
          hint: ERROR_HINTS.DEVPROXY_ERR_MISDIRECTED_HOST,
        },
      };
    case 'unknown':
      return {
        info: {
          status: 404,
          code: 'DEVPROXY_ERR_UNKNOWN_HOST',
          message: `No service is routed at ${refusal.host}.`,
          hint: ERROR_HINTS.DEVPROXY_ERR_UNKNOWN_HOST,
          knownHosts: [...context.table.routes.keys()].sort().map((host) => `${stableOriginUrl(stableOriginFor(core, host, context.https))}/`),
        },
      };
    case 'unavailable': {
      const route = refusal.route;
      return {
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
    case 'loop': {
      const route = refusal.route;
      return {
        route,
        info: {
          status: 508,
          code: 'DEVPROXY_ERR_LOOP_DETECTED',
          message: `The request for ${route.host} went through devproxy ${refusal.hops} times.`,
          hint: ERROR_HINTS.DEVPROXY_ERR_LOOP_DETECTED,
          service: route.service,
          worktree: route.worktree,
        },
      };
    }
  }
}

/** The routes of the request's table for the landing page, sorted by host. */
export function landingEntries(core: ProxyCore, context: RequestContext): HostEntry[] {
  return [...context.table.routes.values()]
    .sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0))
    .map((route) => {
      const entry: HostEntry = {
        host: route.host,
        url: `${stableOriginUrl(stableOriginFor(core, route.host, context.https))}/`,
        worktree: route.worktree,
        service: route.service,
        mode: route.mode,
      };
      if (route.problem !== undefined) entry.problem = route.problem.message;
      return entry;
    });
}
