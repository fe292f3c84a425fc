/**
 * The shapes of devproxy's two files after validation: `devproxy.yaml` (committed, one per
 * repository) and `.devproxy/profile.yaml` (per worktree, git-ignored). Validation turns YAML
 * documents into these; everything downstream trusts them.
 */
import type { RequestRule } from './request-rules.js';

/** Where the local instance of a service comes from. */
export type LocalDefinition =
  /** Something the user runs on 127.0.0.1:port; devproxy only routes to it and checks health. */
  | { kind: 'port'; port: number }
  /** A service of the repository's compose file; `port` is the container port. */
  | { kind: 'compose'; compose: string; port: number }
  /**
   * A process run in the worktree with PORT injected; `port` is unused unless the app ignores PORT.
   * `cwd` is the folder it runs in, relative to the worktree root (absent: the root).
   */
  | { kind: 'command'; command: string; port?: number; cwd?: string };

/** The service's endpoint in the shared cloud DEV environment. */
export interface RemoteDefinition {
  /** Absolute http(s) URL; its path is a prefix for every forwarded request. */
  url: string;
  /** Extra CA bundle (PEM file path, resolved against the repository root) trusted for this remote. */
  ca?: string;
  /** Skip TLS verification for this remote (flagged by `devproxy status`). Default false. */
  insecure: boolean;
}

/** Who may change a shared remote resource through devproxy. */
export type WritePolicy = 'read-write' | 'read-only';

/** Environment a service contributes to the processes of its worktree (`devproxy env`/`run`). */
export interface ServiceEnv {
  /** Name of the variable holding the service's stable URL; null to emit none; absent: `<SERVICE>_URL`. */
  urlName?: string | null;
  /** Values emitted while the service is local; may hold `${env:NAME}` / `${file:path}` references. */
  local: Map<string, string>;
  /** Values emitted while the service is remote; may hold references (secrets stay references). */
  remote: Map<string, string>;
}

/** Credentials injected on the remote hop only (never on a local target, never logged). */
export interface RemoteAuth {
  /** Header name (lower-case) → value; values may hold `${env:…}` / `${file:…}` references. */
  headers: Map<string, string>;
  /** An Entra ID bearer token for this scope, from @azure/identity's DefaultAzureCredential. */
  azure?: { scope: string; tenant?: string };
}

export interface ServiceConfig {
  name: string;
  local?: LocalDefinition;
  remote?: RemoteDefinition;
  /** HTTP path probed for health; without it a TCP connect is the health check. */
  health?: string;
  /** How long a started local instance may take to become healthy (ms). Absent: DEFAULT_HEALTH_TIMEOUT_MS. */
  healthTimeoutMs?: number;
  /** Declared memory budget of the local instance, in bytes. */
  memoryBytes?: number;
  /** Where the route goes when the local instance dies: `remote` falls back, else a 502 page. */
  fallback?: 'remote';
  env?: ServiceEnv;
  auth?: RemoteAuth;
  /** Mutating methods to the remote are refused under `read-only`. Absent: `read-write`. */
  writes?: WritePolicy;
  /** `writes: { deny: [...] }`: further requests refused while the policy is `read-only` (e.g. a GET that dequeues). */
  writesDeny?: RequestRule[];
  /** Answer CORS for the worktree's own origins on the remote hop. Absent: true. */
  cors?: boolean;
  /** Cold-start handling of the remote (retry/wait page); null when turned off. Absent: DEFAULT_WAKE_TIMEOUT_MS. */
  wake?: { timeoutMs: number } | null;
}

export interface ProjectConfig {
  /** Project name: the slug of the main checkout in hostnames. */
  name: string;
  /** Compose file, relative to the repository root. */
  compose?: string;
  /** Services in declaration order. */
  services: Map<string, ServiceConfig>;
  /** Profile name → services that run locally under it. */
  profiles: Map<string, string[]>;
  /** Profile used when a worktree has no profile file. */
  defaultProfile: string;
  /** Extra CA bundle trusted for every remote (PEM path, relative to the repository root). */
  ca?: string;
  /** Header naming the worktree on every remote request; null when turned off. Absent: DEFAULT_WORKTREE_HEADER. */
  worktreeHeader?: string | null;
  /** Folder for new worktrees (`devproxy new`), relative to the repository root. Default `../<repo>.worktrees`. */
  worktreesDir?: string;
  /** How a fresh worktree is prepared (`devproxy new`, `devproxy setup`). Absent: nothing to do. */
  setup?: WorktreeSetup;
}

/** `setup:` of devproxy.yaml: what makes a fresh worktree runnable. */
export interface WorktreeSetup {
  /** Glob patterns, relative to the repository root, of (git-ignored) files copied from the main checkout; never overwriting. */
  copy: string[];
  /** Shell commands run in order in the worktree root; the first that fails stops the set-up. */
  run: string[];
}

/** A service's route mode. */
export type RouteMode = 'local' | 'remote';

/** `.devproxy/profile.yaml` after validation. */
export interface ProfileFile {
  profile: string;
  /** Overrides the worktree's slug in hostnames. */
  name?: string;
  /** Per-service overrides on top of the profile. */
  services: Map<string, RouteMode>;
  /** Per-service overrides of the config's write policy (e.g. allow writes from this worktree). */
  writes?: Map<string, WritePolicy>;
}

/** One problem found in a file, located precisely enough to act on. */
export interface Diagnostic {
  file: string;
  /** 1-based; 0 when the problem concerns the file as a whole. */
  line: number;
  column: number;
  /** Dotted path of the offending field, e.g. `services.api.remote`. */
  field?: string;
  message: string;
  hint: string;
  /** Warnings are shown but change nothing; errors keep the last good file in force. */
  severity?: 'warning';
}

/** `file:line:col field: message — hint` on one line, the form every surface prints. */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line > 0 ? `${d.file}:${d.line}:${d.column}` : d.file;
  const field = d.field ? ` ${d.field}:` : '';
  return `${where}${field} ${d.message} — ${d.hint}`;
}
