/**
 * What the remote hop does besides forwarding, driven by the route's precomputed `hop`: the
 * read-only refusal and the headers only the remote sees
 * (auth resolved from `${env:…}`/`${file:…}` references or an Entra ID token, the worktree
 * header, X-Original-Host). Secrets live only in the upstream request: never in messages.
 */
import { join } from 'node:path';
import { isDevproxyError } from '../errors.js';
import { resolveReferences } from '../profiles/references.js';
import { deniedBy, type RequestRule } from '../profiles/request-rules.js';
import type { RemoteAuth } from '../profiles/schema.js';
import type { RemoteHop, Route } from '../router/types.js';
import { AzureTokenError, type AzureTokenCache } from './azure-token.js';
import { isWorktreeOrigin } from './cors.js';
import type { ProxyErrorInfo } from './upstream-errors.js';
import type { RemoteTarget } from './upstream-pools.js';

/** Methods a read-only remote accepts: the safe methods of RFC 9110 §9.2.1. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** Methods retried while a remote wakes: safe and idempotent, so a retry changes nothing (PUT/DELETE are left out on purpose). */
const RETRIED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** True when a read-only remote lets `method` through. */
export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method);
}

/** True when a request with `method` (and no body) may be retried while the remote wakes. */
export function isRetriedMethod(method: string): boolean {
  return RETRIED_METHODS.has(method);
}

/** The 403 page for a mutating method (or a request a `writes.deny` rule names) sent to a read-only remote. */
export function readOnlyRefusal(route: Route, target: RemoteTarget, method: string, worktreePath: string | undefined, rule?: RequestRule): ProxyErrorInfo {
  const profileFile = worktreePath === undefined ? '.devproxy/profile.yaml' : join(worktreePath, '.devproxy', 'profile.yaml');
  const why = rule === undefined ? '`writes: read-only`' : `\`writes: read-only\` and denies "${rule.text}"`;
  return {
    status: 403,
    code: 'DEVPROXY_ERR_READ_ONLY',
    message: `${method} refused: \`${route.service}\` is ${why} in devproxy.yaml, so worktree \`${route.worktree}\` may not change the shared remote ${target.origin}.`,
    hint: `to allow writes from this worktree, add \`writes: { ${route.service}: read-write }\` to ${profileFile}`,
    service: route.service,
    worktree: route.worktree,
    target: target.origin,
  };
}

/** Why a request to a read-only remote is refused: the 403 page, and the reason for the log. */
export interface WriteRefusal {
  info: ProxyErrorInfo;
  /** `writes: read-only` and the `deny` rule that matched, if one did. */
  why: string;
}

/**
 * Applies a remote's write policy to one request: under `writes: read-only` a method that is not
 * safe, or a safe one a `writes.deny` rule names, is refused; anything else passes (undefined).
 */
export function refusedWrite(route: Route, target: RemoteTarget, hop: RemoteHop, method: string, url: string, worktreePath: string | undefined): WriteRefusal | undefined {
  if (hop.readOnly !== true) return undefined;
  const safe = isSafeMethod(method);
  const rule = safe ? deniedBy(hop.deny, method, url) : undefined;
  if (safe && rule === undefined) return undefined;
  return {
    info: readOnlyRefusal(route, target, method, worktreePath, rule),
    why: `writes: read-only${rule === undefined ? '' : `, deny "${rule.text}"`}`,
  };
}

/** The landing page's host: its links open the worktrees' pages, so it may borrow their credentials too. */
const LANDING_HOSTS: ReadonlySet<string> = new Set(['localhost']);

/**
 * True when devproxy may add the remote's credentials to a request: the request comes from no
 * page (no `Origin`: curl, server-side code, a typed-in address) or from a page of the worktree
 * itself (`worktreeHosts` on devproxy's own ports) or of the `localhost` landing page. A page of
 * any other site (or a sandboxed `null` origin, or a request the browser marks
 * `Sec-Fetch-Site: cross-site`) would otherwise borrow the developer's credentials to the remote.
 */
export function mayLendCredentials(
  origin: string | undefined,
  fetchSite: string | undefined,
  worktreeHosts: ReadonlySet<string> | undefined,
  httpPort: number,
  httpsPort: number | undefined,
): boolean {
  if (fetchSite !== undefined && fetchSite.toLowerCase() === 'cross-site') return false;
  if (origin === undefined) return true;
  return (worktreeHosts !== undefined && isWorktreeOrigin(origin, worktreeHosts, httpPort, httpsPort)) || isWorktreeOrigin(origin, LANDING_HOSTS, httpPort, httpsPort);
}

/** A refusal carrying the page to show (unset variable, failed token). */
export class HopRefusal extends Error {
  constructor(readonly info: ProxyErrorInfo) {
    super(info.message);
    this.name = 'HopRefusal';
  }
}

/** Resolves and caches what the remote hop injects. */
export class RemoteHopHeaders {
  /** Static auth headers per auth object (a new config brings new objects); failures are not cached. */
  readonly #static = new WeakMap<RemoteAuth, string[]>();

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly tokens: AzureTokenCache,
  ) {}

  /**
   * Flat lower-case pairs for the remote request: auth headers, `authorization: Bearer …`, the
   * worktree header and `x-original-host`; the auth ones only when `withAuth` (see
   * {@link mayLendCredentials}). Synchronous unless a token must be fetched; throws (or rejects
   * with) {@link HopRefusal} when a reference is unset or no credential gives a token.
   */
  headersFor(route: Route, target: RemoteTarget, hop: RemoteHop, clientAuthority: string, withAuth: boolean): string[] | Promise<string[]> {
    const pairs: string[] = ['x-original-host', clientAuthority];
    if (hop.worktreeHeader !== undefined) pairs.push(hop.worktreeHeader, route.worktree);
    const auth = hop.auth;
    if (auth === undefined || !withAuth) return pairs;
    if (auth.headers.size > 0) {
      const resolved = this.#resolveStatic(route, target, auth);
      for (let i = 0; i < resolved.length; i++) pairs.push(resolved[i] as string);
    }
    if (auth.azure === undefined) return pairs;
    const { scope, tenant } = auth.azure;
    let token: string | Promise<string>;
    try {
      token = this.tokens.token(scope, tenant);
    } catch (error) {
      throw new HopRefusal(tokenFailure(route, target, error));
    }
    if (typeof token === 'string') {
      pairs.push('authorization', `Bearer ${token}`);
      return pairs;
    }
    return token.then(
      (value) => {
        pairs.push('authorization', `Bearer ${value}`);
        return pairs;
      },
      (error: unknown) => {
        throw new HopRefusal(tokenFailure(route, target, error));
      },
    );
  }

  #resolveStatic(route: Route, target: RemoteTarget, auth: RemoteAuth): string[] {
    let resolved = this.#static.get(auth);
    if (resolved !== undefined) return resolved;
    resolved = [];
    for (const [name, value] of auth.headers) {
      try {
        resolved.push(name, resolveReferences(value, { env: this.env, baseDir: route.repo, what: `the auth header ${name} of service "${route.service}"` }));
      } catch (error) {
        if (!isDevproxyError(error)) throw error;
        throw new HopRefusal({
          status: 502,
          code: error.code,
          message: `${error.message}, so devproxy cannot authenticate to the remote of \`${route.service}\` (worktree \`${route.worktree}\`).`,
          hint: error.hint,
          service: route.service,
          worktree: route.worktree,
          target: target.origin,
        });
      }
    }
    this.#static.set(auth, resolved);
    return resolved;
  }
}

/** The 502 page for a token no credential could give: every credential tried and the command that fixes it. */
function tokenFailure(route: Route, target: RemoteTarget, error: unknown): ProxyErrorInfo {
  const attempts = error instanceof AzureTokenError ? error.attempts.map((a) => `${a.name}: ${a.reason}`).join(' · ') : String((error as Error | undefined)?.message ?? error);
  const tenant = error instanceof AzureTokenError ? error.tenant : undefined;
  const scope = error instanceof AzureTokenError ? error.scope : 'the configured scope';
  return {
    status: 502,
    code: 'DEVPROXY_ERR_REMOTE_AUTH',
    message: `devproxy could not get an Entra ID token (scope ${scope}) for \`${route.service}\` of worktree \`${route.worktree}\`. Tried ${attempts}`,
    hint: `run \`az login${tenant === undefined ? '' : ` --tenant ${tenant}`}\` (or set AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, or \`azd auth login\`), then reload`,
    service: route.service,
    worktree: route.worktree,
    target: target.origin,
  };
}
