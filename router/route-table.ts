import { isAbsolute, resolve as resolvePath } from 'node:path';
import type { Diagnostic, ProfileFile, ProjectConfig, ServiceConfig } from '../profiles/schema.js';
import { DEFAULT_WAKE_TIMEOUT_MS, DEFAULT_WORKTREE_HEADER } from '../profiles/validate-config.js';
import { serviceHost, worktreeSlug } from '../hostname.js';
import { localServices } from './profile-resolution.js';
import type { RemoteHop, RemoteSibling, Route, RoutingTable, Target, WorktreeInput, WorktreeState } from './types.js';

/**
 * Builds the routing table from what is known about every worktree. Pure: no fs, timers or
 * sockets. A worktree whose files are broken keeps the routes of its last good files (its
 * input carries them) and shows its diagnostics; a clash of slugs routes the first worktree
 * (main checkout first, then by path) and reports the clash on both.
 */
export function buildRoutingTable(inputs: readonly WorktreeInput[]): RoutingTable {
  const routes = new Map<string, Route>();
  const worktrees: WorktreeState[] = [];
  const diagnostics: Diagnostic[] = [];
  const ordered = [...inputs].sort((a, b) => Number(b.isMain) - Number(a.isMain) || a.path.localeCompare(b.path));
  const bySlug = new Map<string, WorktreeState>();

  for (const input of ordered) {
    const state = worktreeState(input, slugOf(input));
    worktrees.push(state);

    const owner = bySlug.get(state.slug);
    if (owner) {
      const clash: Diagnostic = {
        file: input.path,
        line: 0,
        column: 0,
        message: `worktrees ${owner.path} and ${input.path} both have the hostname slug "${state.slug}"; only the first is routed`,
        hint: 'give one of them another name with `name: <slug>` in its .devproxy/profile.yaml',
      };
      owner.diagnostics.push(clash);
      state.diagnostics.push(clash);
      diagnostics.push(clash);
      continue;
    }
    bySlug.set(state.slug, state);
    for (const route of routeWorktree(input, state)) routes.set(route.host, route);
  }
  return { routes, worktrees, diagnostics };
}

/** A routing table with the inputs it was built from, which {@link updateRoutingTable} compares the next inputs with. */
export interface RoutingBuild {
  table: RoutingTable;
  /** The inputs of the build, by worktree path. */
  inputs: ReadonlyMap<string, WorktreeInput>;
  /** Why the whole table was built; absent when only the worktrees whose input changed were. */
  full?: FullBuildReason;
  /** Paths of the worktrees whose part of the table was built (every one after a full build). */
  rebuilt: readonly string[];
}

/**
 * When a change can reach other worktrees' entries, so the whole table is built:
 * - `first`: there is no previous build;
 * - `worktrees`: a worktree came or went, or became or stopped being the main checkout (the order
 *   that decides a clash moves);
 * - `slug`: a changed worktree's slug changed (a clash can start or end), or it shares its slug with
 *   another (which one is routed, and the clash diagnostics, involve both);
 * - `host`: a changed worktree's slug or a service name holds a dot, so one of its hosts could be
 *   another worktree's (never with validated files: names are DNS labels).
 */
export type FullBuildReason = 'first' | 'worktrees' | 'slug' | 'host';

/**
 * The table for `inputs`, identical to {@link buildRoutingTable}'s, built from `previous` by
 * building again only the worktrees whose input differs from the one `previous` was built from
 * and reusing every other worktree's state and routes (a profile flip rebuilds one worktree of
 * hundreds). Falls back to the full build when a change can reach other worktrees' entries (see
 * {@link FullBuildReason}). Pure, and leaves `previous` untouched: requests in flight may still
 * hold its table.
 */
export function updateRoutingTable(previous: RoutingBuild | undefined, inputs: readonly WorktreeInput[]): RoutingBuild {
  const byPath = new Map(inputs.map((input) => [input.path, input]));
  const full = (reason: FullBuildReason): RoutingBuild => ({ table: buildRoutingTable(inputs), inputs: byPath, full: reason, rebuilt: [...byPath.keys()] });
  if (previous === undefined) return full('first');
  if (byPath.size !== inputs.length || byPath.size !== previous.inputs.size) return full('worktrees');
  const changed: WorktreeInput[] = [];
  for (const input of inputs) {
    const before = previous.inputs.get(input.path);
    if (before === undefined || before.isMain !== input.isMain) return full('worktrees');
    if (!sameInput(before, input)) changed.push(input);
  }
  const old = previous.table;
  if (changed.length === 0) return { table: { routes: old.routes, worktrees: old.worktrees, diagnostics: [...old.diagnostics] }, inputs: byPath, rebuilt: [] };

  const slugUsers = new Map<string, number>();
  for (const state of old.worktrees) slugUsers.set(state.slug, (slugUsers.get(state.slug) ?? 0) + 1);
  const position = new Map(old.worktrees.map((state, index) => [state.path, index]));
  const worktrees = [...old.worktrees];
  const built = new Map<string, Route>();
  for (const input of changed) {
    const index = position.get(input.path) as number;
    const before = old.worktrees[index] as WorktreeState;
    const slug = slugOf(input);
    if (slug !== before.slug || slugUsers.get(slug) !== 1) return full('slug');
    if (!plainNames(slug, input.config) || !plainNames(slug, previous.inputs.get(input.path)?.config)) return full('host');
    const state = worktreeState(input, slug);
    for (const route of routeWorktree(input, state)) built.set(route.host, route);
    worktrees[index] = state;
  }
  // Assembled in worktree order, as the full build inserts them: the landing page lists routes in this order.
  const routes = new Map<string, Route>();
  for (const state of worktrees) {
    for (const host of state.hosts) routes.set(host, built.get(host) ?? (old.routes.get(host) as Route));
  }
  return { table: { routes, worktrees, diagnostics: [...old.diagnostics] }, inputs: byPath, rebuilt: changed.map((input) => input.path) };
}

/** Compares one field of two inputs; typed per field so that a new field of {@link WorktreeInput} must say how it compares. */
type FieldEquality = { [K in keyof WorktreeInput]-?: (a: WorktreeInput[K], b: WorktreeInput[K]) => boolean };

/**
 * How {@link updateRoutingTable} tells an input that changed: configs and profile files by
 * identity (the loader makes new objects for every read, and never changes one), the runtime's
 * facts by content (they are built afresh for every rebuild).
 */
const SAME_FIELD: FieldEquality = {
  path: Object.is,
  repo: Object.is,
  branch: Object.is,
  isMain: Object.is,
  config: Object.is,
  profile: Object.is,
  diagnostics: (a, b) => a.length === b.length && a.every((d, i) => d === b[i]),
  setupPending: Object.is,
  projectName: Object.is,
  runtimePorts: (a, b) => sameEntries(a, b, Object.is),
  runtimeFailures: (a, b) => sameEntries(a, b, (p, q) => p.message === q.message && p.hint === q.hint),
  down: Object.is,
};
const INPUT_FIELDS = Object.keys(SAME_FIELD) as Array<keyof WorktreeInput>;

function sameInput(a: WorktreeInput, b: WorktreeInput): boolean {
  return INPUT_FIELDS.every((field) => (SAME_FIELD[field] as (x: unknown, y: unknown) => boolean)(a[field], b[field]));
}

function sameEntries<V>(a: ReadonlyMap<string, V> | undefined, b: ReadonlyMap<string, V> | undefined, same: (x: V, y: V) => boolean): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.size !== b.size) return false;
  for (const [key, value] of a) {
    const other = b.get(key);
    if (other === undefined || !same(value, other)) return false;
  }
  return true;
}

/**
 * True when no host of the worktree can be another worktree's: `<service>.<slug>.localhost` with
 * no dot in either name is only this slug's, and slugs are checked unique.
 */
function plainNames(slug: string, config: ProjectConfig | undefined): boolean {
  return !slug.includes('.') && [...(config?.services.keys() ?? [])].every((service) => !service.includes('.'));
}

function slugOf(input: WorktreeInput): string {
  return worktreeSlug({
    isMain: input.isMain,
    path: input.path,
    ...(input.branch ? { branch: input.branch } : {}),
    ...(input.profile?.name ? { nameOverride: input.profile.name } : {}),
    projectName: input.projectName ?? input.config?.name,
  });
}

function worktreeState(input: WorktreeInput, slug: string): WorktreeState {
  return {
    slug,
    path: input.path,
    repo: input.repo,
    ...(input.branch ? { branch: input.branch } : {}),
    isMain: input.isMain,
    ...(input.config ? { profile: input.profile?.profile ?? input.config.defaultProfile, profiles: [...input.config.profiles.keys()] } : {}),
    diagnostics: [...input.diagnostics],
    hosts: [],
    ...(input.down ? { down: true } : {}),
  };
}

/** The routes of a worktree that owns its slug, in its config's service order; fills the state's hosts and memory. */
function routeWorktree(input: WorktreeInput, state: WorktreeState): Route[] {
  if (!input.config) return [];
  // A down worktree routes every service remote; one whose set-up is pending still shows what it will run.
  const profileLocal = localServices(input.config, input.profile);
  const local = new Set(input.down ? [] : profileLocal);
  const declared = (names: Iterable<string>) => [...names].reduce((sum, name) => sum + (input.config!.services.get(name)?.memoryBytes ?? 0), 0);
  state.memory = { profileBytes: declared(profileLocal), fullBytes: declared(input.config.services.keys()) };
  const built: Route[] = [];
  for (const service of input.config.services.values()) {
    const route = routeFor(input, input.config, service, state.slug, local.has(service.name));
    state.hosts.push(route.host);
    built.push(route);
  }
  const worktreeHosts: ReadonlySet<string> = new Set(built.map((route) => route.host));
  attachCors(built, worktreeHosts, input.config);
  attachRemoteHops(built, worktreeHosts, input.config, input.profile);
  return built;
}

function routeFor(input: WorktreeInput, config: ProjectConfig, service: ServiceConfig, slug: string, wantsLocal: boolean): Route {
  const base = {
    host: serviceHost(service.name, slug),
    worktree: slug,
    service: service.name,
    repo: input.repo,
    ...(service.health ? { health: service.health } : {}),
  };
  if (wantsLocal) {
    const port = service.local?.kind === 'port' ? service.local.port : input.runtimePorts?.get(service.name);
    if (port !== undefined) {
      return { ...base, mode: 'local', target: { kind: 'local', origin: `http://127.0.0.1:${port}`, port } };
    }
    const failure = input.runtimeFailures?.get(service.name);
    if (failure && service.fallback !== 'remote') return { ...base, mode: 'local', problem: failure };
    // Make-before-break: until the local instance is healthy, the remote keeps serving.
    if (service.remote) {
      return { ...base, mode: 'remote', desired: 'local', target: remoteTarget(input.repo, config, service) };
    }
    if (input.setupPending) {
      return {
        ...base,
        mode: 'local',
        problem: { message: `worktree "${slug}" is not set up yet, so "${service.name}" does not run locally (and has no remote to serve meanwhile)`, hint: `run \`devproxy setup\` in ${input.path}; its output says what failed` },
      };
    }
    return {
      ...base,
      mode: 'local',
      problem: {
        message: `service "${service.name}" of worktree "${slug}" is starting locally and has no remote to serve meanwhile`,
        hint: 'wait for it to become healthy (`devproxy status`), or read its log with `devproxy logs ' + service.name + '`',
      },
    };
  }
  if (service.remote) return { ...base, mode: 'remote', target: remoteTarget(input.repo, config, service) };
  return {
    ...base,
    mode: 'remote',
    problem: {
      message: `service "${service.name}" of worktree "${slug}" is remote in profile "${input.profile?.profile ?? config.defaultProfile}" but has no remote endpoint`,
      hint: `run it locally: \`devproxy use ${input.profile?.profile ?? config.defaultProfile} --service ${service.name}=local\`, or add \`remote:\` to services.${service.name} in devproxy.yaml`,
    },
  };
}

function remoteTarget(repo: string, config: ProjectConfig, service: ServiceConfig): Target {
  const remote = service.remote!;
  const url = new URL(remote.url);
  const caFiles = [config.ca, remote.ca].filter((ca): ca is string => Boolean(ca)).map((ca) => (isAbsolute(ca) ? ca : resolvePath(repo, ca)));
  return {
    kind: 'remote',
    origin: url.origin,
    hostname: url.hostname,
    authority: url.host,
    basePath: url.pathname === '/' ? '' : url.pathname.replace(/\/$/, ''),
    caFiles,
    insecure: remote.insecure,
  };
}

/** Lets every route of the worktree, local or remote, answer CORS for the worktree's origins unless its service says `cors: false`. */
function attachCors(routes: readonly Route[], worktreeHosts: ReadonlySet<string>, config: ProjectConfig): void {
  for (const route of routes) if (config.services.get(route.service)?.cors !== false) route.corsHosts = worktreeHosts;
}

/**
 * Precomputes the remote hop of each remote-routed service: auth (references unresolved), the
 * effective write policy (the profile file's `writes:` over the config's), wake
 * timeout and worktree header, and the worktree's remote services for redirect rewriting.
 */
function attachRemoteHops(routes: readonly Route[], worktreeHosts: ReadonlySet<string>, config: ProjectConfig, profile: ProfileFile | undefined): void {
  const siblings: RemoteSibling[] = [];
  for (const route of routes) {
    if (route.target?.kind !== 'remote') continue;
    const { hostname, authority, basePath } = route.target;
    siblings.push({ host: route.host, hostname: hostname.toLowerCase(), authority: authority.toLowerCase(), basePath });
  }
  if (siblings.length === 0) return;
  const worktreeHeader = config.worktreeHeader === undefined ? DEFAULT_WORKTREE_HEADER : config.worktreeHeader;
  for (const route of routes) {
    if (route.target?.kind !== 'remote') continue;
    const service = config.services.get(route.service) as ServiceConfig;
    const hop: RemoteHop = { siblings, worktreeHosts };
    if (service.auth) hop.auth = service.auth;
    if ((profile?.writes?.get(service.name) ?? service.writes) === 'read-only') {
      hop.readOnly = true;
      if (service.writesDeny !== undefined) hop.deny = service.writesDeny;
    }
    const wake = service.wake === undefined ? { timeoutMs: DEFAULT_WAKE_TIMEOUT_MS } : service.wake;
    if (wake !== null) hop.wakeTimeoutMs = wake.timeoutMs;
    if (worktreeHeader !== null) hop.worktreeHeader = worktreeHeader;
    route.target.hop = hop;
  }
}
