/**
 * CORS for a worktree's own origins, the same on local and remote routes: a page on
 * `https://ui.<worktree>.localhost` may call any other service of its worktree with credentials,
 * whoever answers. Pure helpers over flat raw header arrays (`[name, value, …]`); the proxy calls
 * them only when the request's `Origin` is one of the worktree's origins, so other origins are
 * never widened.
 *
 * - Remote routes: devproxy answers preflights itself and replaces the remote's
 *   Access-Control-Allow-Origin/-Credentials (its CORS list knows only the cloud UI).
 * - Local routes: the app is asked first; when it answered CORS itself (Vite, an Express `cors()`
 *   middleware) its answer stands unchanged, otherwise devproxy adds the same headers and turns
 *   a preflight the app did not understand into a 204.
 */
import { ROUTE_HEADER } from './forward-headers.js';

/** How long browsers may cache a preflight answered by devproxy, in seconds. */
const PREFLIGHT_MAX_AGE_S = 600;

/**
 * Response headers a page reads without being told (the CORS-safelisted response headers of the
 * Fetch standard) and those it may never read (`set-cookie`): neither is worth exposing.
 */
const NOT_EXPOSED: ReadonlySet<string> = new Set([
  'cache-control',
  'content-language',
  'content-length',
  'content-type',
  'expires',
  'last-modified',
  'pragma',
  'set-cookie',
  'set-cookie2',
]);

/** A CORS preflight: the method and headers the page asked for. */
export interface Preflight {
  method: string;
  headers: string | undefined;
}

/** How devproxy treats the CORS headers already in a response. */
export type CorsMode =
  /** Remote routes: the remote's allow-origin/credentials are replaced for the worktree's origin. */
  | 'replace'
  /** Local routes: an app that answered CORS itself keeps its answer, untouched. */
  | 'unless-answered';

/**
 * True when `origin` (an `Origin` header) is one of the worktree's stable origins: one of
 * `hosts` over http on `httpPort` or over https on `httpsPort`.
 */
export function isWorktreeOrigin(origin: string, hosts: ReadonlySet<string>, httpPort: number, httpsPort: number | undefined): boolean {
  const match = /^(https?):\/\/([^/:@]+)(?::(\d+))?$/i.exec(origin);
  if (match === null) return false;
  const scheme = (match[1] as string).toLowerCase();
  if (!hosts.has((match[2] as string).toLowerCase())) return false;
  const port = match[3] === undefined ? (scheme === 'https' ? 443 : 80) : Number(match[3]);
  return scheme === 'https' ? port === httpsPort : port === httpPort;
}

/** True for a CORS preflight: OPTIONS naming the method the page wants to send. */
export function isPreflight(method: string, requestMethod: string | string[] | undefined): requestMethod is string {
  return method === 'OPTIONS' && typeof requestMethod === 'string';
}

/** True when the response (flat raw headers) carries an Access-Control-Allow-Origin of its own. */
export function answeredCors(rawHeaders: readonly (Buffer | string)[]): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (String(rawHeaders[i]).toLowerCase() === 'access-control-allow-origin') return true;
  }
  return false;
}

/**
 * Headers of a preflight answered by devproxy itself: the origin allowed with credentials, the
 * requested method and headers echoed, so the upstream's own CORS list never gets a say.
 */
export function preflightHeaders(origin: string, requestMethod: string, requestHeaders: string | undefined, route: 'local' | 'remote'): string[] {
  const headers = [
    'access-control-allow-origin', origin,
    'access-control-allow-credentials', 'true',
    'access-control-allow-methods', requestMethod,
    'access-control-max-age', String(PREFLIGHT_MAX_AGE_S),
    'vary', 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
    'content-length', '0',
    ROUTE_HEADER, route,
  ];
  if (requestHeaders !== undefined && requestHeaders !== '') headers.push('access-control-allow-headers', requestHeaders);
  return headers;
}

/**
 * The response headers (flat, as `buildClientHeaders` made them) with CORS for `origin`:
 * Access-Control-Allow-Origin/-Credentials, `Origin` in Vary (once), and
 * Access-Control-Expose-Headers naming every header of the response a page could not read
 * otherwise (`x-devproxy-route`, `etag`, `x-ms-*`, …) besides those the upstream already
 * exposed. Credentialed requests cannot use `*`, hence the list. In `unless-answered` mode a
 * response that carries its own Access-Control-Allow-Origin is returned as it is.
 */
export function withCorsHeaders(headers: readonly string[], origin: string, mode: CorsMode): string[] {
  if (mode === 'unless-answered' && answeredCors(headers)) return headers as string[];
  const out: string[] = [];
  const exposed: string[] = [];
  const seen = new Set<string>();
  const expose = (name: string): void => {
    const lower = name.trim().toLowerCase();
    if (lower === '' || seen.has(lower)) return;
    seen.add(lower);
    exposed.push(lower);
  };
  let varied = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const lower = name.toLowerCase();
    let value = headers[i + 1] as string;
    if (lower === 'access-control-allow-origin' || lower === 'access-control-allow-credentials') continue;
    if (lower === 'access-control-expose-headers') {
      for (const listed of value.split(',')) if (listed.trim() !== '*') expose(listed);
      continue;
    }
    if (lower === 'vary') {
      if (!/(^|,)\s*(origin|\*)\s*(,|$)/i.test(value)) value = `${value}, Origin`;
      varied = true;
    } else if (!NOT_EXPOSED.has(lower) && !lower.startsWith('access-control-')) {
      expose(lower);
    }
    out.push(name, value);
  }
  out.push('access-control-allow-origin', origin, 'access-control-allow-credentials', 'true');
  if (!varied) out.push('vary', 'Origin');
  if (exposed.length > 0) out.push('access-control-expose-headers', exposed.join(', '));
  return out;
}
