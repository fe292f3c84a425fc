/**
 * Which headers cross the proxy, in both directions. Pure functions over flat raw header arrays
 * (`[name, value, name, value, …]`), the shape both node:http and undici use natively, so the hot
 * path never builds header objects.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http2';

/**
 * Hop-by-hop headers: they describe one connection, not the message, so a proxy must not pass
 * them on (RFC 9110 §7.6.1). Keys are lower-case.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  // Advertises alternative services (h3) of the upstream's origin, not of the stable hostname.
  'alt-svc',
  // Lists per-connection options and further hop-by-hop header names.
  'connection',
  // curl sends `Expect: 100-continue`; node:http already answered it, an upstream must not wait.
  'expect',
  // HTTP/2 upgrade negotiation (h2c) of the client connection.
  'http2-settings',
  // Keep-alive parameters of the client connection.
  'keep-alive',
  // Authentication with this proxy, never with the upstream.
  'proxy-authenticate',
  'proxy-authorization',
  // Non-standard Connection used by old clients talking to proxies.
  'proxy-connection',
  // Transfer codings the client accepts; only `trailers` is re-added (see buildUpstreamHeaders).
  'te',
  // Announces trailer fields of a chunked message that is re-framed on the other hop.
  'trailer',
  // Framing of the message on one hop; each side frames its own body.
  'transfer-encoding',
  // Protocol switch of the client connection; WebSocket upgrades take a separate path.
  'upgrade',
]);

/** Counts how many times a request went through devproxy (portless calls it `x-portless-hops`). */
export const HOPS_HEADER = 'x-devproxy-hops';
/** Tells the client whether devproxy sent the request to a local instance or to the remote. */
export const ROUTE_HEADER = 'x-devproxy-route';
/** On a page devproxy answers itself (refusal, 502, 404…): its `DEVPROXY_ERR_*` code. */
export const ERROR_CODE_HEADER = 'x-devproxy-error';

/** What the proxy adds to the upstream request. */
export interface UpstreamHeaderContext {
  /** Host header sent upstream: the stable authority (local) or the remote's authority. */
  host: string;
  /** Address of the client socket. */
  forwardedFor: string;
  /** Authority the client addressed (stable hostname with port). */
  forwardedHost: string;
  forwardedProto: 'http' | 'https';
  /** Value of the incoming hops counter (0 when absent). */
  hops: number;
  /**
   * Headers of the remote hop (auth, worktree header, X-Original-Host) as flat lower-case pairs;
   * a client header of the same name is dropped so the client can never choose their value.
   */
  extra?: readonly string[];
  /**
   * The protocol of a WebSocket upgrade (`websocket`): the upstream request then carries
   * `Connection: upgrade` and this `Upgrade`, the one hop-by-hop pair an upgrade must pass on.
   */
  upgrade?: string;
}

/** True when `lower` is one of the names of flat `pairs`. */
function namedIn(pairs: readonly string[], lower: string): boolean {
  for (let i = 0; i < pairs.length; i += 2) if (pairs[i] === lower) return true;
  return false;
}

/** Reads the hop counter from raw headers; absent or malformed counts as 0. */
export function readHops(rawHeaders: readonly string[]): number {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).toLowerCase() === HOPS_HEADER) {
      const hops = Number.parseInt(rawHeaders[i + 1] as string, 10);
      return Number.isFinite(hops) && hops > 0 ? hops : 0;
    }
  }
  return 0;
}

/**
 * Adds the names a `Connection` value lists (other than the common `close`/`keep-alive`/`upgrade`,
 * already hop-by-hop) to `listed`; returns it, or undefined while there are none, the usual case.
 */
function addConnectionListed(value: string, listed: Set<string> | undefined): Set<string> | undefined {
  // Nearly every message says just one of these: no split, no Set.
  const lower = value.length <= 10 ? value.toLowerCase() : '';
  if (lower === 'keep-alive' || lower === 'close' || lower === 'upgrade') return listed;
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name === '' || name === 'close' || name === 'keep-alive' || name === 'upgrade') continue;
    (listed ??= new Set()).add(name);
  }
  return listed;
}

/** Flat `pairs` without the fields `listed` names (a `Connection` header named them after they came). */
function withoutListed(pairs: string[], listed: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < pairs.length; i += 2) {
    const name = pairs[i] as string;
    if (!listed.has(name.toLowerCase())) out.push(name, pairs[i + 1] as string);
  }
  return out;
}

/**
 * True for headers only devproxy may set; client-supplied values are dropped, never trusted.
 * `x-original-host` is the one remote hops get: an app must not be able to read it from a client.
 */
export function isProxyOwned(name: string): boolean {
  return name.startsWith('x-forwarded-') || name === 'forwarded' || name.startsWith('x-devproxy-') || name === 'x-original-host';
}

/**
 * The request headers sent upstream: the client's end-to-end headers (no HTTP/2 pseudo-headers,
 * no hop-by-hop, no client-supplied X-Forwarded-* / x-devproxy-* / X-Original-Host), then Host, X-Forwarded-* and
 * the incremented hop counter. HTTP/2 may split `cookie` into several fields; HTTP/1.1 needs one.
 * Plain requests and WebSocket upgrades (HTTP/1.1 and h2 extended CONNECT) alike.
 */
export function buildUpstreamHeaders(rawHeaders: readonly string[], context: UpstreamHeaderContext): string[] {
  const extra = context.extra;
  let out: string[] = [];
  let listed: Set<string> | undefined;
  let cookie: string | undefined;
  let trailers = false;
  // One pass; the rare `Connection` naming other fields filters them out afterwards.
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.charCodeAt(0) === 58 /* ':' pseudo-header */) continue;
    const lower = name.toLowerCase();
    if (lower === 'host' || isProxyOwned(lower)) continue;
    const value = rawHeaders[i + 1] as string;
    if (HOP_BY_HOP_HEADERS.has(lower)) {
      if (lower === 'te' && value.toLowerCase().includes('trailers')) trailers = true;
      else if (lower === 'connection') listed = addConnectionListed(value, listed);
      continue;
    }
    if (extra !== undefined && namedIn(extra, lower)) continue;
    if (lower === 'cookie') {
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    out.push(name, value);
  }
  if (listed !== undefined) {
    out = withoutListed(out, listed);
    if (listed.has('cookie')) cookie = undefined;
  }
  if (cookie !== undefined) out.push('cookie', cookie);
  if (trailers) out.push('te', 'trailers');
  out.push(
    'host', context.host,
    'x-forwarded-for', context.forwardedFor,
    'x-forwarded-host', context.forwardedHost,
    'x-forwarded-proto', context.forwardedProto,
    HOPS_HEADER, String(context.hops + 1),
  );
  if (context.upgrade !== undefined) out.push('connection', 'upgrade', 'upgrade', context.upgrade);
  if (extra !== undefined) for (let i = 0; i < extra.length; i++) out.push(extra[i] as string);
  return out;
}

/**
 * A parsed header object (undici's and node's shape: lower-case names, repeated fields as arrays)
 * as a flat raw list, each value of a repeated field as a field of its own.
 */
export function flattenHeaders(headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (typeof value === 'string') out.push(name, value);
    else if (value !== undefined) for (const each of value) out.push(name, each);
  }
  return out;
}

/**
 * A header field as node:http writes it back: one character per byte, so any byte of the
 * upstream's value (UTF-8 in a filename, opaque bytes) leaves exactly as it came, and decoding
 * costs no UTF-8 scan. A Location the rewriter changes is read as UTF-8 instead: it goes through
 * URL parsing, which percent-encodes characters as UTF-8; one it leaves alone, and every Set-Cookie
 * (whose rewrite touches only ASCII attributes), keep their bytes.
 */
function latin1(field: Buffer | string): string {
  return typeof field === 'string' ? field : field.toString('latin1');
}

/** Rewrites applied to upstream response headers (remote routes only). */
export interface ResponseHeaderRewriter {
  location(value: string): string;
  setCookie(value: string): string;
}

/**
 * The response headers sent to the client: upstream headers without hop-by-hop ones (and those
 * named in its `Connection`), Location/Set-Cookie rewritten when a rewriter is given, plus
 * `x-devproxy-route`. CORS for the worktree's origins is added after, by `withCorsHeaders`.
 * Accepts undici's Buffer arrays to avoid an intermediate copy.
 */
export function buildClientHeaders(rawHeaders: readonly (Buffer | string)[], route: 'local' | 'remote', rewriter: ResponseHeaderRewriter | undefined): string[] {
  let out: string[] = [];
  let listed: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = latin1(rawHeaders[i] as Buffer | string);
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(lower) || lower === ROUTE_HEADER) {
      if (lower === 'connection') listed = addConnectionListed(latin1(rawHeaders[i + 1] as Buffer | string), listed);
      continue;
    }
    const raw = rawHeaders[i + 1] as Buffer | string;
    let value: string;
    if (rewriter !== undefined && lower === 'location') {
      const decoded = String(raw);
      const rewritten = rewriter.location(decoded);
      value = rewritten === decoded ? latin1(raw) : rewritten;
    } else if (rewriter !== undefined && lower === 'set-cookie') value = rewriter.setCookie(latin1(raw));
    else value = latin1(raw);
    out.push(name, value);
  }
  if (listed !== undefined) out = withoutListed(out, listed);
  out.push(ROUTE_HEADER, route);
  return out;
}

/**
 * True when an HTTP/1.1 answer (flat raw headers) has a Transfer-Encoding, so a chunked body: the
 * only framing after which trailers can come.
 */
export function mayCarryTrailers(rawHeaders: readonly (Buffer | string)[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as Buffer | string;
    if (name.length === 17 && String(name).toLowerCase() === 'transfer-encoding') return true;
  }
  return false;
}

/** Flat header pairs as an h2 header object with `:status` (repeated names become arrays, as for Set-Cookie). */
export function h2HeaderObject(flat: readonly string[], status: number): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { ':status': status };
  for (let i = 0; i < flat.length; i += 2) {
    const name = (flat[i] as string).toLowerCase();
    const value = flat[i + 1] as string;
    const prior = headers[name];
    if (prior === undefined) headers[name] = value;
    else if (Array.isArray(prior)) prior.push(value);
    else headers[name] = [String(prior), value];
  }
  return headers;
}
