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

/**
 * Rewrites an absolute (or scheme-relative) `Location` that points at the remote's host, over
 * http or https, to the stable origin the client used, dropping the remote's basePath. Relative
 * Locations and other hosts are returned unchanged.
 */
export function rewriteLocation(location: string, remote: RemoteAuthority, stable: StableOrigin): string {
  const isSchemeRelative = location.startsWith('//');
  if (!isSchemeRelative && !/^https?:\/\//i.test(location)) return location;
  let url: URL;
  try {
    url = new URL(isSchemeRelative ? `https:${location}` : location);
  } catch {
    return location;
  }
  if (url.hostname !== remote.hostname.toLowerCase()) return location;
  // An explicit port must be the remote's own (or the scheme default, which URL already dropped).
  if (url.port !== '' && url.host !== remote.authority.toLowerCase()) return location;
  if (url.port === '' && remote.authority.includes(':')) {
    const remotePort = remote.authority.slice(remote.authority.lastIndexOf(':') + 1);
    if (remotePort !== DEFAULT_PORTS[url.protocol]) return location;
  }
  const path = stripBasePath(url.pathname, remote.basePath);
  return `${stableOriginUrl(stable)}${path}${url.search}${url.hash}`;
}

/** True when a cookie Domain attribute names `hostname` or one of its parent domains. */
function domainCovers(domain: string, hostname: string): boolean {
  const d = (domain.startsWith('.') ? domain.slice(1) : domain).toLowerCase();
  const h = hostname.toLowerCase();
  return d !== '' && (h === d || h.endsWith(`.${d}`));
}

/**
 * Rewrites one `Set-Cookie` value from a remote: a `Domain` naming the remote (or a parent of
 * it) is removed so the cookie becomes host-only on the stable hostname; `Path` loses the
 * remote's basePath; `Secure` is kept only when the client side is HTTPS.
 */
export function rewriteSetCookie(value: string, remote: RemoteAuthority, clientIsHttps: boolean): string {
  const parts = value.split(';');
  const out: string[] = [parts[0] as string];
  let droppedSecure = false;
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i] as string;
    const trimmed = part.trim();
    const eq = trimmed.indexOf('=');
    const name = (eq === -1 ? trimmed : trimmed.slice(0, eq)).trim().toLowerCase();
    const attrValue = eq === -1 ? '' : trimmed.slice(eq + 1).trim();
    if (name === 'domain' && domainCovers(attrValue, remote.hostname)) continue;
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
