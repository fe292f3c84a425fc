/**
 * The one place where a failed upstream exchange becomes an answer for a person: refused → 502
 * naming the service and the fix, DNS → 502 naming the host, TLS → 502 naming the error,
 * timeouts → 504, client gone → nothing. Pure: unit-tested with plain error objects.
 */
import { ERROR_HINTS, type ErrorCode } from '../errors.js';
import type { Route, Target } from '../router/types.js';

/** Code of the error thrown when a CA file cannot be read; its message names the file. */
export const CA_UNREADABLE_CODE = 'DEVPROXY_CA_UNREADABLE';

/** What an error page (HTML or JSON) says. Never carries a stack trace. */
export interface ProxyErrorInfo {
  status: number;
  code: ErrorCode;
  message: string;
  hint: string;
  service?: string;
  worktree?: string;
  /** `127.0.0.1:<port>` for local targets, the remote's origin for remote ones. */
  target?: string;
  /** Stable URLs of the hosts devproxy knows (404 page). */
  knownHosts?: string[];
}

/** Meaning of the TLS verification codes people meet with DEV environments. */
const TLS_ERROR_MEANINGS: Readonly<Record<string, string>> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the certificate is not signed by a CA devproxy trusts',
  UNABLE_TO_GET_ISSUER_CERT: 'the issuer of the certificate is not known',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the issuer of the certificate is not among the trusted CAs',
  SELF_SIGNED_CERT_IN_CHAIN: 'the certificate chain ends in a self-signed CA devproxy does not trust',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the certificate is self-signed',
  CERT_HAS_EXPIRED: 'the certificate has expired',
  CERT_NOT_YET_VALID: 'the certificate is not valid yet',
  CERT_REVOKED: 'the certificate was revoked',
  CERT_SIGNATURE_FAILURE: 'the certificate signature is invalid',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the certificate does not cover the remote hostname',
  EPROTO: 'the TLS handshake failed',
};

const TIMEOUT_MEANINGS: Readonly<Record<string, string>> = {
  UND_ERR_CONNECT_TIMEOUT: 'did not accept the connection in time',
  UND_ERR_HEADERS_TIMEOUT: 'did not send response headers in time',
  UND_ERR_BODY_TIMEOUT: 'stopped sending the response body',
  ETIMEDOUT: 'did not answer in time',
};

/** Error codes that mean the client went away (devproxy aborted the upstream request itself). */
const CLIENT_ABORT_CODES: ReadonlySet<string> = new Set(['UND_ERR_ABORTED', 'DEVPROXY_CLIENT_ABORTED']);

/** Details that name the route on every page. */
export interface UpstreamErrorContext {
  route: Route;
  target: Target;
  /** The worktree's effective profile, used in the `devproxy use` fix; `<profile>` when unknown. */
  profile?: string;
}

/** The `code` of an error or of its cause chain (undici wraps some socket errors). */
function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_SOCKET' && code !== 'UND_ERR') return code;
    current = (current as { cause?: unknown }).cause;
  }
  const top = (error as { code?: unknown } | null)?.code;
  return typeof top === 'string' ? top : undefined;
}

/** How the error page names a target. */
export function describeTarget(target: Target): string {
  return target.kind === 'local' ? `127.0.0.1:${target.port}` : target.origin;
}

/**
 * Maps an upstream failure to the page to show, or `null` when the client aborted (nothing
 * must be written then).
 */
export function mapUpstreamError(error: unknown, context: UpstreamErrorContext): ProxyErrorInfo | null {
  const code = errorCode(error);
  if (code !== undefined && CLIENT_ABORT_CODES.has(code)) return null;
  const { route, target } = context;
  const where = { service: route.service, worktree: route.worktree, target: describeTarget(target) };
  const name = `\`${route.service}\` of worktree \`${route.worktree}\``;

  if (code !== undefined && code in TIMEOUT_MEANINGS) {
    return {
      status: 504,
      code: 'DEVPROXY_ERR_UPSTREAM_TIMEOUT',
      message: `${name} at ${where.target} ${TIMEOUT_MEANINGS[code]} (${code}).`,
      hint: ERROR_HINTS.DEVPROXY_ERR_UPSTREAM_TIMEOUT,
      ...where,
    };
  }

  if (target.kind === 'local' && (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET')) {
    const refused = code === 'ECONNREFUSED';
    return {
      status: 502,
      code: refused ? 'DEVPROXY_ERR_UPSTREAM_REFUSED' : 'DEVPROXY_ERR_UPSTREAM_FAILED',
      message: refused
        ? `Nothing is listening on ${where.target}: is ${name} running?`
        : `${name} at ${where.target} closed the connection (${code}).`,
      hint:
        `start it, or route it to its remote: ` +
        `\`devproxy use ${context.profile ?? '<profile>'} --service ${route.service}=remote\``,
      ...where,
    };
  }

  if (target.kind === 'remote') {
    if (code === CA_UNREADABLE_CODE) {
      return {
        status: 502,
        code: 'DEVPROXY_ERR_UPSTREAM_TLS',
        message: `TLS to the remote ${target.hostname} of ${name} cannot be set up: ${(error as Error).message}.`,
        hint: 'fix the `ca:` path in devproxy.yaml (or NODE_EXTRA_CA_CERTS) so it names a readable PEM file (a regular file of at most 1 MiB)',
        ...where,
      };
    }
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      const host = new URL(target.origin).hostname;
      return {
        status: 502,
        code: 'DEVPROXY_ERR_UPSTREAM_DNS',
        message: `The remote host ${host} of ${name} cannot be resolved (${code}).`,
        hint: ERROR_HINTS.DEVPROXY_ERR_UPSTREAM_DNS,
        ...where,
      };
    }
    if (code !== undefined && (code in TLS_ERROR_MEANINGS || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))) {
      const meaning = TLS_ERROR_MEANINGS[code] ?? 'the TLS connection failed';
      return {
        status: 502,
        code: 'DEVPROXY_ERR_UPSTREAM_TLS',
        message: `TLS to the remote ${target.hostname} of ${name} failed: ${code} (${meaning}).`,
        hint: ERROR_HINTS.DEVPROXY_ERR_UPSTREAM_TLS,
        ...where,
      };
    }
  }

  return {
    status: 502,
    code: 'DEVPROXY_ERR_UPSTREAM_FAILED',
    message: `The request to ${name} at ${where.target} failed${code === undefined ? '' : ` (${code})`}.`,
    hint: ERROR_HINTS.DEVPROXY_ERR_UPSTREAM_FAILED,
    ...where,
  };
}
