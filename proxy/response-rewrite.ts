/**
 * Rewrites of a remote's response headers back to the stable hostname, so a browser on
 * `http(s)://<service>.<worktree>.localhost` follows redirects and stores cookies as if the
 * remote lived there. Pure: unit-tested without sockets.
 */

/** The remote side of a route, as the router describes it. */
export interface RemoteAuthority {
  /** Host name the remote is addressed by (Host header, SNI). */
  hostname: string;
  /** `host[:port]` as the remote sees it. */
  authority: string;
  /** Path prefix of the remote URL without trailing slash ('' for none). */
  basePath: string;
}

/** Where the client reached devproxy. */
export interface StableOrigin {
  scheme: 'http' | 'https';
  /** Stable hostname, e.g. `api.feature-x.localhost`. */
  host: string;
  port: number;
}

const DEFAULT_PORTS: Readonly<Record<string, string>> = { 'http:': '80', 'https:': '443' };

/** `scheme://host[:port]` with the port left out when it is the scheme's default. */
export function stableOriginUrl(origin: StableOrigin): string {
  const defaultPort = origin.scheme === 'https' ? 443 : 80;
  return origin.port === defaultPort ? `${origin.scheme}://${origin.host}` : `${origin.scheme}://${origin.host}:${origin.port}`;
}

/** Removes `basePath` from the front of `path` when it is a whole-segment prefix. */
function stripBasePath(path: string, basePath: string): string {
  if (basePath === '' || !path.startsWith(basePath)) return path;
  const next = path.charAt(basePath.length);
  if (next === '') return '/';
  if (next === '/') return path.slice(basePath.length);
  if (next === '?' || next === '#') return `/${path.slice(basePath.length)}`;
  return path;
}

/** The remote a parsed URL points at: its host, and its port (explicit or the scheme's default). */
function pointsAt(url: URL, remote: RemoteAuthority): boolean {
  if (url.hostname !== remote.hostname.toLowerCase()) return false;
  // An explicit port must be the remote's own (or the scheme default, which URL already dropped).
  if (url.port !== '') return url.host === remote.authority.toLowerCase();
  if (!remote.authority.includes(':')) return true;
  return remote.authority.slice(remote.authority.lastIndexOf(':') + 1) === DEFAULT_PORTS[url.protocol];
}

/** An absolute or scheme-relative http(s) Location parsed, or undefined for relative/other ones. */
function parseAbsolute(location: string): URL | undefined {
  const isSchemeRelative = location.startsWith('//');
  if (!isSchemeRelative && !/^https?:\/\//i.test(location)) return undefined;
  try {
    return new URL(isSchemeRelative ? `https:${location}` : location);
  } catch {
    return undefined;
  }
}

/**
 * Rewrites an absolute (or scheme-relative) `Location` that points at the remote's host, over
 * http or https, to the stable origin the client used, dropping the remote's basePath. Relative
 * Locations and other hosts are returned unchanged.
 */
export function rewriteLocation(location: string, remote: RemoteAuthority, stable: StableOrigin): string {
  const url = parseAbsolute(location);
  if (url === undefined || !pointsAt(url, remote)) return location;
  const path = stripBasePath(url.pathname, remote.basePath);
  return `${stableOriginUrl(stable)}${path}${url.search}${url.hash}`;
}

/** A remote of the worktree and the stable host it is served at. */
export interface SiblingRemote extends RemoteAuthority {
  /** Stable `<service>.<worktree>.localhost` host. */
  host: string;
}

/**
 * Like {@link rewriteLocation}, for every remote of the worktree at once: a sign-in redirect from
 * the API to the identity host (or back) lands on that service's stable host, with the scheme
 * and port the client used. The first matching remote wins.
 */
export function rewriteSiblingLocation(location: string, siblings: readonly SiblingRemote[], scheme: 'http' | 'https', port: number): string {
  const url = parseAbsolute(location);
  if (url === undefined) return location;
  for (const sibling of siblings) {
    if (!pointsAt(url, sibling)) continue;
    const path = stripBasePath(url.pathname, sibling.basePath);
    return `${stableOriginUrl({ scheme, host: sibling.host, port })}${path}${url.search}${url.hash}`;
  }
  return location;
}

/** True when a cookie Domain attribute names `hostname` or one of its parent domains. */
function domainCovers(domain: string, hostname: string): boolean {
  const d = (domain.startsWith('.') ? domain.slice(1) : domain).toLowerCase();
  const h = hostname.toLowerCase();
  return d !== '' && (h === d || h.endsWith(`.${d}`));
}

/**
 * Rewrites one `Set-Cookie` value from a remote: a `Domain` naming the remote (or a parent of
 * it), or any of `otherHostnames` (the worktree's other remotes), is removed so the cookie
 * becomes host-only on the stable hostname; `Path` loses the remote's basePath; `Secure` is kept
 * only when the client side is HTTPS, and `SameSite=None` goes with it.
 */
export function rewriteSetCookie(value: string, remote: RemoteAuthority, clientIsHttps: boolean, otherHostnames: readonly string[] = []): string {
  const parts = value.split(';');
  const out: string[] = [parts[0] as string];
  let droppedSecure = false;
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i] as string;
    const trimmed = part.trim();
    const eq = trimmed.indexOf('=');
    const name = (eq === -1 ? trimmed : trimmed.slice(0, eq)).trim().toLowerCase();
    const attrValue = eq === -1 ? '' : trimmed.slice(eq + 1).trim();
    if (name === 'domain' && (domainCovers(attrValue, remote.hostname) || otherHostnames.some((h) => domainCovers(attrValue, h)))) continue;
    if (name === 'secure' && !clientIsHttps) {
      droppedSecure = true;
      continue;
    }
    if (name === 'path' && remote.basePath !== '') {
      out.push(` Path=${stripBasePath(attrValue, remote.basePath)}`);
      continue;
    }
    out.push(part);
  }
  if (droppedSecure) {
    // Browsers reject `SameSite=None` without `Secure`; without the attribute they default to Lax.
    for (let i = out.length - 1; i > 0; i--) {
      if (/^\s*samesite\s*=\s*none\s*$/i.test(out[i] as string)) out.splice(i, 1);
    }
  }
  return out.join(';');
}
