/**
 * The routing decision: what one request's Host / `:authority` reaches in a routing table. Pure
 * (no I/O, no engine state), so every rule is a unit test; the proxy maps each outcome to its
 * answer (`proxy/request-context.ts`).
 */
import { isLocalhostName, LOCAL_TLD, parseHost } from '../hostname.js';
import type { Route, RoutingTable, Target } from './types.js';

/** Most proxies in a chain before the proxy refuses with 508 Loop Detected. */
export const MAX_PROXY_HOPS = 5;

/**
 * The TLS connection a request came on, as far as the misdirected check needs it. `sni` is the
 * name the client sent (undefined without SNI: it got the `localhost` certificate);
 * `certificateCovers` says whether the certificate served for that SNI covers a host.
 */
export interface TlsConnection {
  readonly sni: string | undefined;
  certificateCovers(host: string): boolean;
}

/** Where a request goes, or why devproxy answers it itself. */
export type Resolution =
  /** Forward to the route's target. `host` is the table key (lower-case, no port, no root dot). */
  | { kind: 'route'; host: string; route: Route; target: Target }
  /** `localhost` itself: the landing page listing the routes. */
  | { kind: 'landing' }
  /** 400: no Host at all (`missing`), or one that is not a hostname. */
  | { kind: 'bad-host'; missing: boolean }
  /**
   * 421: an IP literal (`name` is the authority as sent), a name outside `*.localhost` (DNS
   * rebinding), or a host the connection's certificate does not cover (`sni` as sent).
   */
  | { kind: 'misdirected'; why: 'ip-literal' | 'not-localhost'; name: string }
  | { kind: 'misdirected'; why: 'other-certificate'; name: string; sni: string | undefined }
  /** 404: a localhost name no route has. */
  | { kind: 'unknown'; host: string }
  /** 502: the route exists but has no target (its `problem` says why). */
  | { kind: 'unavailable'; route: Route }
  /** 508: the request already went through devproxy `hops` times. */
  | { kind: 'loop'; route: Route; hops: number };

/**
 * Applies the routing rules, in this order: bad or missing Host → bad-host; IP literal or a name
 * other than `localhost`/`*.localhost` → misdirected; over TLS, a host the connection's
 * certificate does not cover → misdirected (browsers reuse an h2 connection for every name its
 * certificate covers, RFC 9113 §9.1.1); `localhost` → landing; no route → unknown; route
 * without target → unavailable; `hops` at the limit → loop; else the route.
 */
export function resolve(table: RoutingTable, authority: string | undefined, hops: number, tls?: TlsConnection): Resolution {
  const parsed = parseHost(authority);
  if (!parsed.ok) {
    if (parsed.reason === 'ip-literal') return { kind: 'misdirected', why: 'ip-literal', name: authority as string };
    return { kind: 'bad-host', missing: parsed.reason === 'missing' };
  }
  const host = parsed.host;
  if (!isLocalhostName(host)) return { kind: 'misdirected', why: 'not-localhost', name: host };
  if (tls !== undefined && !tls.certificateCovers(host)) return { kind: 'misdirected', why: 'other-certificate', name: host, sni: tls.sni };
  if (host === LOCAL_TLD) return { kind: 'landing' };
  const route = table.routes.get(host);
  if (route === undefined) return { kind: 'unknown', host };
  const target = route.target;
  if (target === undefined) return { kind: 'unavailable', route };
  if (hops >= MAX_PROXY_HOPS) return { kind: 'loop', route, hops };
  return { kind: 'route', host, route, target };
}
