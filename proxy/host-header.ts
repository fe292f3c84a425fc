/**
 * Parsing of the `Host` header (HTTP/1.1) or `:authority` pseudo-header (HTTP/2) into the table
 * key the router uses. Pure: no I/O, unit-tested table-driven.
 */

/** Longest DNS name (RFC 1035), without the trailing dot. */
const MAX_HOSTNAME_LENGTH = 253;
/** Longest DNS label (RFC 1035). */
const MAX_LABEL_LENGTH = 63;
/** Letters, digits, hyphen; underscore too because real service names use it and browsers send it. */
const LABEL_PATTERN = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;
/** A last label made of digits (or 0x hex) turns the whole name into an IPv4 literal for WHATWG URL. */
const NUMERIC_LABEL_PATTERN = /^(?:\d+|0x[0-9a-f]*)$/;
const PORT_PATTERN = /^\d{1,5}$/;

/** Why a Host value was refused; the proxy answers 400 for `missing`/`invalid`, 421 for `ip-literal`. */
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
 * Parses a Host / `:authority` value. Rejects empty values, IP literals (v4, bracketed v6, and
 * bare v6), names over 253 characters, and characters outside DNS labels.
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
  if (name === '' || name.length > MAX_HOSTNAME_LENGTH) return { ok: false, reason: 'invalid' };

  const labels = name.split('.');
  for (const label of labels) {
    if (label.length === 0 || label.length > MAX_LABEL_LENGTH || !LABEL_PATTERN.test(label)) {
      return { ok: false, reason: 'invalid' };
    }
  }
  if (NUMERIC_LABEL_PATTERN.test(labels[labels.length - 1] as string)) return { ok: false, reason: 'ip-literal' };

  return port === undefined ? { ok: true, host: name } : { ok: true, host: name, port };
}

/** True for `localhost` and `*.localhost`: the only names devproxy serves (anything else is DNS rebinding). */
export function isLocalhostName(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost');
}
