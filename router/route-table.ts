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
    const slug = worktreeSlug({
      isMain: input.isMain,
      path: input.path,
      ...(input.branch ? { branch: input.branch } : {}),
      ...(input.profile?.name ? { nameOverride: input.profile.name } : {}),
      projectName: input.projectName ?? input.config?.name,
    });
    const state: WorktreeState = {
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
    worktrees.push(state);

    const owner = bySlug.get(slug);
    if (owner) {
      const clash: Diagnostic = {
        file: input.path,
        line: 0,
        column: 0,
        message: `worktrees ${owner.path} and ${input.path} both have the hostname slug "${slug}"; only the first is routed`,
        hint: 'give one of them another name with `name: <slug>` in its .devproxy/profile.yaml',
      };
      owner.diagnostics.push(clash);
      state.diagnostics.push(clash);
      diagnostics.push(clash);
      continue;
    }
    bySlug.set(slug, state);
    if (!input.config) continue;

    // A down worktree routes every service remote; one whose set-up is pending still shows what it will run.
    const profileLocal = localServices(input.config, input.profile);
    const local = new Set(input.down ? [] : profileLocal);
    const declared = (names: Iterable<string>) => [...names].reduce((sum, name) => sum + (input.config!.services.get(name)?.memoryBytes ?? 0), 0);
    state.memory = { profileBytes: declared(profileLocal), fullBytes: declared(input.config.services.keys()) };
    const built: Route[] = [];
    for (const service of input.config.services.values()) {
      const route = routeFor(input, input.config, service, slug, local.has(service.name));
      routes.set(route.host, route);
      state.hosts.push(route.host);
      built.push(route);
    }
    const worktreeHosts: ReadonlySet<string> = new Set(built.map((route) => route.host));
    attachCors(built, worktreeHosts, input.config);
    attachRemoteHops(built, worktreeHosts, input.config, input.profile);
  }
  return { routes, worktrees, diagnostics };
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
