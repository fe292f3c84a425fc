/**
 * The remote-hop policy: what devproxy does for a remote route besides forwarding, driven by the
 * route's precomputed `hop`, for plain requests and WebSockets alike — the write policy
 * (`writes: read-only`, `writes.deny`), the headers only the remote sees (auth resolved from
 * `${env:…}`/`${file:…}` references or an Entra ID token, lent only to the worktree's own pages;
 * the worktree header, X-Original-Host), and how long to wait for a sleeping remote (wake).
 * Secrets live only in the upstream request: never in messages.
 */
import { join } from 'node:path';
import { ERROR_HINTS, isDevproxyError } from '../errors.js';
import { resolveReferences } from '../profiles/references.js';
import { deniedBy, type RequestRule } from '../profiles/request-rules.js';
import type { RemoteAuth } from '../profiles/schema.js';
import type { RemoteHop, Route } from '../router/types.js';
import { AzureTokenError, type AzureTokenCache } from './azure-token.js';
import { isWorktreeOrigin } from './cors.js';
import { wantsHtml } from './error-pages.js';
import type { ProxyCore } from './proxy-core.js';
import type { RequestContext } from './request-context.js';
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

/** First wait before retrying a waking remote, in ms; doubled per attempt up to {@link WAKE_MAX_DELAY_MS}. */
const WAKE_FIRST_DELAY_MS = 250;
/** Longest wait between two attempts at a waking remote, in ms. */
const WAKE_MAX_DELAY_MS = 4_000;
/** Most attempts at a waking remote for one request, whatever its wake timeout. */
const WAKE_MAX_ATTEMPTS = 16;
/** Seconds between reloads of the waking page (and its Retry-After). */
export const WAKE_PAGE_RETRY_S = 3;
/** Upstream failures that mean "still waking": timeouts and a refused connection. */
const WAKE_ERROR_CODES: ReadonlySet<string> = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'ECONNREFUSED']);

/** How one exchange handles a sleeping remote. */
export interface WakePlan {
  /** The remote's `wake` timeout: no attempt starts after it. */
  timeoutMs: number;
  /** A browser navigation: answered with the waking page instead of being retried. */
  navigation: boolean;
}

/**
 * How a request waits for a remote with a `wake` timeout, or undefined when it does not: only a
 * request without a body, and only a navigation (served the waking page) or a retried method.
 */
export function wakePlanFor(hop: RemoteHop, method: string, accept: string | undefined, hasBody: boolean): WakePlan | undefined {
  if (hop.wakeTimeoutMs === undefined || hasBody) return undefined;
  const navigation = method === 'GET' && wantsHtml(accept);
  return navigation || isRetriedMethod(method) ? { timeoutMs: hop.wakeTimeoutMs, navigation } : undefined;
}

/** True for an answer a waking remote's front end gives while it starts (502, 503, 504). */
export function isWakingStatus(status: number): boolean {
  return status >= 502 && status <= 504;
}

/** The wait before attempt `attempts + 1`, in ms: 250 ms doubled per attempt, at most 4 s. */
export function wakeDelayMs(attempts: number): number {
  return Math.min(WAKE_FIRST_DELAY_MS * 2 ** (attempts - 1), WAKE_MAX_DELAY_MS);
}

/** Whether one more attempt, after `attempts` and `elapsedMs`, fits the attempt bound and the plan's timeout. */
export function mayRetryWake(plan: WakePlan, attempts: number, elapsedMs: number): boolean {
  return attempts < WAKE_MAX_ATTEMPTS && elapsedMs + wakeDelayMs(attempts) <= plan.timeoutMs;
}

/** The code of an upstream failure that means "still waking" (looked for down the cause chain), or undefined. */
export function wakeErrorCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && WAKE_ERROR_CODES.has(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
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

/** A single-valued request header (node gives an array only for the few it never joins). */
function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Distinct `host origin` pairs logged when credentials are withheld; later ones are not, so a hostile page cannot fill the log. */
const MAX_WITHHELD_NOTICES = 100;

/** Logs, once per `key` (and at most {@link MAX_WITHHELD_NOTICES} keys), why credentials were withheld: the remote's 401 is otherwise a puzzle. */
function noteWithheld(core: ProxyCore, key: string, message: string): void {
  if (core.withheldNotices.has(key) || core.withheldNotices.size >= MAX_WITHHELD_NOTICES) return;
  core.withheldNotices.add(key);
  core.logger?.info(message);
}

/**
 * Whether the remote hop may add its credentials to the request of `context` as its origin
 * goes ({@link mayLendCredentials}); the first time a page of another origin is refused them on
 * a host, the log says so.
 */
export function lendsCredentials(core: ProxyCore, context: RequestContext, route: Route, hop: RemoteHop): boolean {
  const origin = context.headers.origin;
  const lend = mayLendCredentials(origin, headerValue(context.headers['sec-fetch-site']), hop.worktreeHosts, core.options.httpPort, core.options.httpsPort);
  if (!lend && hop.auth !== undefined) {
    noteWithheld(core, `${route.host} ${origin ?? 'cross-site'}`, `${route.host}: remote credentials withheld from a request of ${origin ?? 'a cross-site page'}, which is not a page of worktree \`${route.worktree}\``);
  }
  return lend;
}

/**
 * Whether the connection of `context` may lend credentials as its peer goes: any connection of
 * a loopback listener may; one a Docker bridge listener accepted only from a container devproxy
 * started (see `bridge-peers.ts`), which may take the engine's answer.
 */
function peerLends(core: ProxyCore, context: RequestContext, route: Route): boolean | Promise<boolean> {
  const peers = core.options.bridgePeers;
  if (peers === undefined) return true;
  const verdict = peers.mayLend(context.connection);
  if (verdict === true) return true;
  const note = (lend: boolean): boolean => {
    if (!lend) {
      const peer = peers.peerOf(context.connection) ?? 'an unknown peer';
      noteWithheld(core, `${route.host} peer ${peer}`, `${route.host}: remote credentials withheld from ${peer} on the Docker bridge, which is not a container devproxy started`);
    }
    return lend;
  };
  return verdict === false ? note(false) : verdict.then(note);
}

/**
 * The remote hop's headers for one request ({@link RemoteHopHeaders.headersFor}, credentials only
 * as {@link lendsCredentials} and the connection's peer allow), handed to `send`: at once when
 * they are ready, else once the peer's verdict and the token came — unless `gone()` says the
 * client left meanwhile. A failure, thrown or rejected, goes to `fail`. The one step plain
 * requests and WebSockets share.
 */
export function sendWithHopHeaders(
  core: ProxyCore,
  context: RequestContext,
  route: Route,
  target: RemoteTarget,
  hop: RemoteHop,
  send: (extra: readonly string[]) => void,
  fail: (error: unknown) => void,
  gone: () => boolean,
): void {
  const authority = context.authority as string;
  const withAuth = lendsCredentials(core, context, route, hop);
  // Only a request that would lend asks about its peer: a loopback one, or one without auth, never does.
  const peer = withAuth && hop.auth !== undefined ? peerLends(core, context, route) : withAuth;
  if (typeof peer !== 'boolean') {
    peer.then((lend) => {
      if (!gone()) sendHeaders(core, route, target, hop, authority, lend, send, fail, gone);
    }, fail);
    return;
  }
  sendHeaders(core, route, target, hop, authority, peer, send, fail, gone);
}

function sendHeaders(
  core: ProxyCore,
  route: Route,
  target: RemoteTarget,
  hop: RemoteHop,
  authority: string,
  withAuth: boolean,
  send: (extra: readonly string[]) => void,
  fail: (error: unknown) => void,
  gone: () => boolean,
): void {
  let extra: string[] | Promise<string[]>;
  try {
    extra = core.hopHeaders.headersFor(route, target, hop, authority, withAuth);
  } catch (error) {
    fail(error);
    return;
  }
  if (Array.isArray(extra)) {
    send(extra);
    return;
  }
  extra.then((resolved) => {
    if (!gone()) send(resolved);
  }, fail);
}

/** A refusal carrying the page to show (unset variable, failed token). */
export class HopRefusal extends Error {
  constructor(readonly info: ProxyErrorInfo) {
    super(info.message);
    this.name = 'HopRefusal';
  }
}

/** The page for a hop whose headers could not be made: the refusal's own, or a 502 for an unexpected error. */
export function hopFailure(route: Route, error: unknown): ProxyErrorInfo {
  if (error instanceof HopRefusal) return error.info;
  return {
    status: 502,
    code: 'DEVPROXY_ERR_INTERNAL',
    message: `devproxy could not prepare the request to the remote of \`${route.service}\` (worktree \`${route.worktree}\`): ${(error as Error | undefined)?.message ?? String(error)}.`,
    hint: ERROR_HINTS.DEVPROXY_ERR_INTERNAL,
    service: route.service,
    worktree: route.worktree,
  };
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
