import type { RequestRule } from '../profiles/request-rules.js';
import type { Diagnostic, ProfileFile, ProjectConfig, RemoteAuth, RouteMode } from '../profiles/schema.js';

/** One remote service of a worktree, as sign-in redirects and cookies are rewritten for it. */
export interface RemoteSibling {
  /** Stable `<service>.<worktree>.localhost` host the remote is reached at through devproxy. */
  host: string;
  /** Remote host name (lower-case). */
  hostname: string;
  /** Remote `host[:port]` (lower-case). */
  authority: string;
  /** Remote path prefix without trailing slash ('' for none). */
  basePath: string;
}

/**
 * What the remote hop of a route does besides forwarding, precomputed by the router so the proxy
 * checks fields instead of reading config per request. Every field is optional: absent = off.
 */
export interface RemoteHop {
  /** Credentials to inject; values still hold their `${env:…}`/`${file:…}` references (never resolved here). */
  auth?: RemoteAuth;
  /** Effective write policy is read-only (config, unless the worktree's profile file overrides it). */
  readOnly?: boolean;
  /** With `readOnly`: the service's `writes.deny` rules, refusing requests of safe methods too. */
  deny?: readonly RequestRule[];
  /** Stable hosts of every service of the worktree: pages of these origins may use the remote's injected auth; absent: none may. */
  worktreeHosts?: ReadonlySet<string>;
  /** Cold-start handling: how long a sleeping remote may take to wake, in ms; absent: `wake: false`. */
  wakeTimeoutMs?: number;
  /** Header naming the worktree on every remote request (lower-case); absent: `worktreeHeader: false`. */
  worktreeHeader?: string;
  /** Every remote-routed service of the worktree (this one included), shared by its routes. */
  siblings?: readonly RemoteSibling[];
}

/** Where a request for one `<service>.<worktree>.localhost` goes. */
export type Target =
  | {
      kind: 'local';
      /** `http://127.0.0.1:<port>`: the key of the upstream pool. */
      origin: string;
      port: number;
    }
  | {
      kind: 'remote';
      /** `https://host[:port]`: the key of the upstream pool. */
      origin: string;
      /** Host header and TLS SNI for the remote hop. */
      hostname: string;
      /** `host[:port]` as the remote sees it; compared when rewriting Location. */
      authority: string;
      /** Path prefix of the remote URL without a trailing slash ('' for none). */
      basePath: string;
      /** Resolved PEM file paths trusted in addition to the system roots. */
      caFiles: string[];
      insecure: boolean;
      /** Auth, write policy, CORS, wake and worktree header of the remote hop; absent: plain forwarding. */
      hop?: RemoteHop;
    };

/** A route that cannot be served, with the reason shown on the error page. */
export interface RouteProblem {
  message: string;
  hint: string;
}

export interface Route {
  /** Lower-case `<service>.<worktree>.localhost`, the table key. */
  host: string;
  worktree: string;
  service: string;
  /** Main checkout path of the repository the worktree belongs to. */
  repo: string;
  mode: RouteMode;
  /** Set while the route differs from what the profile asks (a local instance not healthy yet). */
  desired?: RouteMode;
  /** Absent when the route cannot be served; `problem` says why. */
  target?: Target;
  problem?: RouteProblem;
  /** Health path of the service, for status probes. */
  health?: string;
  /**
   * Stable hosts of every service of the worktree: their origins get CORS with credentials from
   * this route, local or remote; absent: `cors: false`.
   */
  corsHosts?: ReadonlySet<string>;
}

/** What the router knows about one worktree. */
export interface WorktreeState {
  slug: string;
  path: string;
  repo: string;
  branch?: string;
  isMain: boolean;
  /** Effective profile name (from the profile file, else the config's default). */
  profile?: string;
  /** Profiles its config defines, in order (what a switcher offers). */
  profiles?: string[];
  /** Problems with this worktree's files; the routes shown are the last good ones. */
  diagnostics: Diagnostic[];
  hosts: string[];
  /** Declared memory (`memory:` of devproxy.yaml): of the services its profile runs locally, and of all of them. */
  memory?: { profileBytes: number; fullBytes: number };
  /** Its local instances are stopped by `devproxy down`; the profile is kept for `up`. */
  down?: boolean;
}

export interface RoutingTable {
  /** Lower-case host without port → route. */
  routes: Map<string, Route>;
  worktrees: WorktreeState[];
  /** Problems that concern no single worktree (e.g. duplicate slugs). */
  diagnostics: Diagnostic[];
}

/** One worktree as the outside world (git + files + runtime) describes it to the router. */
export interface WorktreeInput {
  path: string;
  /** Main checkout path of the repository. */
  repo: string;
  branch?: string;
  isMain: boolean;
  /** Last good config for this worktree (its own devproxy.yaml, else the main checkout's). */
  config?: ProjectConfig;
  /** Last good profile file, undefined when the worktree has none. */
  profile?: ProfileFile;
  /** Current problems with its files (shown, never fatal). */
  diagnostics: Diagnostic[];
  /** Its `setup:` has not succeeded yet (`devproxy new` locked it): no local instance starts. */
  setupPending?: boolean;
  /** Main checkout's project name, which names the main worktree. */
  projectName?: string;
  /**
   * Ports of local instances started by the runtime (service → host port), only for services
   * whose instance is healthy. Services of kind `port` do not need an entry.
   */
  runtimePorts?: Map<string, number>;
  /**
   * Local instances that failed (died, exited, never became healthy), with why: the route then
   * answers that problem, or falls back to the remote when the service says `fallback: remote`.
   */
  runtimeFailures?: Map<string, RouteProblem>;
  /** `devproxy down` stopped its local instances: every service routes remote until `up` or `use`. */
  down?: boolean;
}
