/**
 * The one hostname grammar of devproxy. Pure: no I/O, unit-tested table-driven.
 *
 * Two strictnesses, on purpose (README "Routing rules"): the names devproxy *makes* (project,
 * worktree, service and profile names; slugs) are RFC 1123 labels — letters, digits, hyphen —
 * so every stable hostname resolves and gets a certificate everywhere. The names devproxy *reads*
 * from clients (Host, `:authority`, SNI) may also hold `_`, which browsers (WHATWG URL) and
 * curl send: such a name can never match a route, so it gets the 404 that lists the routed
 * hosts instead of a bare 400.
 */

/** The top-level domain every stable hostname lives under; browsers resolve it to loopback. */
export const LOCAL_TLD = 'localhost';

/** Longest DNS name (RFC 1035), without the trailing dot. */
const MAX_HOSTNAME_LENGTH = 253;
/** Longest DNS label (RFC 1035). */
const MAX_LABEL_LENGTH = 63;
/** A label devproxy makes: lower-case letters, digits, inner hyphens (RFC 952/1123), at most 63. */
const NAME_LABEL_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** A last label made of digits (or 0x hex) turns the whole name into an IPv4 literal for WHATWG URL. */
const NUMERIC_LABEL_PATTERN = /^(?:\d+|0x[0-9a-f]*)$/;
const PORT_PATTERN = /^\d{1,5}$/;

/**
 * True when `name` can be one label of a stable hostname devproxy makes: what config and profile
 * names (project, service, profile, worktree `name:`) must be. `_` is refused (RFC 1123).
 */
export function isNameLabel(name: string): boolean {
  return NAME_LABEL_PATTERN.test(name);
}

/**
 * A DNS-safe label from a branch or folder name: the last path segment, lower-cased, runs of
 * anything but [a-z0-9] folded to one hyphen, trimmed of hyphens, at most 63 characters.
 * Returns '' when nothing usable is left; anything else passes {@link isNameLabel}.
 */
export function toSlug(name: string): string {
  const lastSegment = name.split('/').filter(Boolean).pop() ?? '';
  return lastSegment
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_LABEL_LENGTH)
    .replace(/-+$/, '');
}

/**
 * The slug that names a worktree in hostnames: the profile file's `name:` if set; the project
 * name for the main checkout; else the last segment of its branch; else its folder name.
 */
export function worktreeSlug(w: { isMain: boolean; branch?: string; path: string; nameOverride?: string; projectName?: string }): string {
  if (w.nameOverride) return w.nameOverride;
  if (w.isMain && w.projectName) return w.projectName;
  const fromBranch = w.branch ? toSlug(w.branch) : '';
  return fromBranch || toSlug(w.path);
}

/** `<service>.<worktree>.localhost`, the table key of a route. */
export function serviceHost(service: string, worktree: string): string {
  return `${service}.${worktree}.${LOCAL_TLD}`;
}

/**
 * True for `localhost` and `*.localhost` (any case, one optional trailing dot), per RFC 6761: the
 * only names devproxy serves (anything else is DNS rebinding) and the ones the Node preload and
 * the upstream lookup answer with loopback.
 */
export function isLocalhostName(name: string): boolean {
  const lower = name.toLowerCase();
  const bare = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  return bare === LOCAL_TLD || bare.endsWith(`.${LOCAL_TLD}`);
}

const DOT = 0x2e;
const HYPHEN = 0x2d;

/** A character of a label devproxy reads from a client: `a-z`, `0-9`, `-`, and `_`, which WHATWG URL hosts allow and browsers send. */
function isWireChar(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x30 && code <= 0x39) || code === HYPHEN || code === 0x5f;
}

/**
 * True when every label of `name` (lower-case, no trailing dot) is a client-sent label (wire
 * characters, no hyphen at either end) and it fits DNS limits. One pass over the characters: it
 * runs on every request's Host.
 */
function isWireName(name: string): boolean {
  const length = name.length;
  if (length === 0 || length > MAX_HOSTNAME_LENGTH) return false;
  let start = 0;
  for (let i = 0; i <= length; i++) {
    const code = i === length ? DOT : name.charCodeAt(i);
    if (code !== DOT) {
      if (!isWireChar(code)) return false;
      continue;
    }
    const size = i - start;
    if (size === 0 || size > MAX_LABEL_LENGTH || name.charCodeAt(start) === HYPHEN || name.charCodeAt(i - 1) === HYPHEN) return false;
    start = i + 1;
  }
  return true;
}

/**
 * A TLS SNI name as devproxy keys certificates: lower-cased, root dot dropped; undefined for
 * anything that is not a DNS name of the client grammar (path separators, spaces, over-long).
 * IP literals are not DNS names: callers check those first.
 */
export function normaliseServername(servername: string): string | undefined {
  const name = servername.toLowerCase().replace(/\.$/, '');
  return isWireName(name) ? name : undefined;
}

/** Why a Host value was refused: 400 for `missing`/`invalid`, 421 for `ip-literal`. */
export type HostRejection = 'missing' | 'invalid' | 'ip-literal';

/** Result of {@link parseHost}. */
export type ParsedHost =
  | {
      ok: true;
      /** Lower-case hostname without port and without one trailing dot: the routing table key. */
      host: string;
      /** The port the client addressed, when it named one. */
      port?: number;
    }
  | { ok: false; reason: HostRejection };

/**
 * Parses a Host (HTTP/1.1) / `:authority` (HTTP/2) value into the routing table key. Rejects
 * empty values, IP literals (v4, bracketed v6, and bare v6), names over 253 characters, and
 * characters outside client-sent DNS labels.
 */
export function parseHost(value: string | undefined): ParsedHost {
  if (value === undefined) return { ok: false, reason: 'missing' };
  const raw = value.trim();
  if (raw === '') return { ok: false, reason: 'missing' };
  if (raw.startsWith('[')) return { ok: false, reason: 'ip-literal' };

  let name = raw;
  let port: number | undefined;
  const colon = raw.indexOf(':');
  if (colon !== -1) {
    // Two colons without brackets can only be a bare IPv6 address.
    if (raw.indexOf(':', colon + 1) !== -1) return { ok: false, reason: 'ip-literal' };
    const portText = raw.slice(colon + 1);
    if (!PORT_PATTERN.test(portText)) return { ok: false, reason: 'invalid' };
    port = Number(portText);
    if (port > 65535) return { ok: false, reason: 'invalid' };
    name = raw.slice(0, colon);
  }

  name = name.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (!isWireName(name)) return { ok: false, reason: 'invalid' };
  const lastDot = name.lastIndexOf('.');
  if (NUMERIC_LABEL_PATTERN.test(name.slice(lastDot + 1))) return { ok: false, reason: 'ip-literal' };

  return port === undefined ? { ok: true, host: name } : { ok: true, host: name, port };
}
