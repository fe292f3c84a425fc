/**
 * Builders for routing tables in proxy tests:
 * `tableOf(route('api.feature-x.localhost', local(port)))`.
 */
import type { Route, RouteProblem, RoutingTable, Target } from '../../router/types.js';

/** A local target on 127.0.0.1:<port>. */
export function local(port: number): Target {
  return { kind: 'local', origin: `http://127.0.0.1:${port}`, port };
}

/** Fields of a remote target; `origin` is where the pool connects, `hostname` is Host and SNI. */
export interface RemoteSpec {
  origin: string;
  hostname: string;
  /** Defaults to `hostname` plus the origin's port, if any. */
  authority?: string;
  basePath?: string;
  caFiles?: string[];
  insecure?: boolean;
}

/** A remote target; e.g. origin `https://127.0.0.1:<port>` reached as `api-dev.test-remote.localhost`. */
export function remote(spec: RemoteSpec): Target {
  const port = new URL(spec.origin).port;
  return {
    kind: 'remote',
    origin: spec.origin,
    hostname: spec.hostname,
    authority: spec.authority ?? (port === '' ? spec.hostname : `${spec.hostname}:${port}`),
    basePath: spec.basePath ?? '',
    caFiles: spec.caFiles ?? [],
    insecure: spec.insecure ?? false,
  };
}

/** A route for `<service>.<worktree>.localhost`; pass no target and a `problem` for a broken route. */
export function route(host: string, target: Target | undefined, extra: { problem?: RouteProblem; repo?: string } = {}): Route {
  const [service = 'svc', worktree = 'wt'] = host.split('.');
  const built: Route = {
    host,
    service,
    worktree,
    repo: extra.repo ?? '/tmp/repo',
    mode: target?.kind ?? 'local',
  };
  if (target !== undefined) built.target = target;
  if (extra.problem !== undefined) built.problem = extra.problem;
  return built;
}

/** A table holding the given routes, one worktree per distinct worktree slug (profile `standard`). */
export function tableOf(...routes: Route[]): RoutingTable {
  const slugs = [...new Set(routes.map((r) => r.worktree))];
  return {
    routes: new Map(routes.map((r) => [r.host, r])),
    worktrees: slugs.map((slug) => ({
      slug,
      path: `/tmp/${slug}`,
      repo: '/tmp/repo',
      isMain: false,
      profile: 'standard',
      diagnostics: [],
      hosts: routes.filter((r) => r.worktree === slug).map((r) => r.host),
    })),
    diagnostics: [],
  };
}
