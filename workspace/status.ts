import { formatDiagnostic, type Diagnostic } from '../profiles/schema.js';
import type { Route, RoutingTable } from '../router/types.js';
import { healthCheckFor, probe } from '../runtime/health.js';

/** Where a service's requests go, in the one word the dashboard shows. */
export type RouteState = 'local' | 'remote' | 'starting' | 'failed' | 'fallback';

/** Health of a route's target as last probed. */
export type Health = 'healthy' | 'unhealthy' | 'starting' | 'not-checked';

/** How long a status request waits for one local health probe. */
const STATUS_PROBE_TIMEOUT_MS = 800;

export interface ServiceStatus {
  name: string;
  host: string;
  url: string;
  httpsUrl: string | null;
  route: 'local' | 'remote';
  /** What the profile asks for; differs from `route` while a local instance starts. */
  desired: 'local' | 'remote';
  /** The route in one word: `starting` (remote serves until local is healthy), `fallback` (local failed, remote serves), `failed` (nothing serves). */
  state: RouteState;
  /** `127.0.0.1:5173` or the remote URL; null when the route cannot be served. */
  target: string | null;
  health: Health;
  problem: { message: string; hint: string } | null;
  /** True when the route goes to a remote with TLS verification off (`insecure: true` in devproxy.yaml). */
  insecure: boolean;
  /** Extra facts from the local runtime (state, memory), when it knows the service. */
  runtime?: Record<string, unknown>;
}

export interface DiagnosticStatus extends Diagnostic {
  severity?: 'warning';
  /** The one-line form `file:line:col field: message — hint`. */
  text: string;
}

export interface WorktreeStatus {
  name: string;
  path: string;
  repo: string;
  branch: string | null;
  main: boolean;
  profile: string | null;
  /** Profiles the worktree's devproxy.yaml defines. */
  profiles: string[];
  services: ServiceStatus[];
  diagnostics: DiagnosticStatus[];
  /** True after `devproxy down`: no local instance runs, every route is remote, until `devproxy up` or `use`. */
  down?: boolean;
  /** True while the daemon starts or stops this worktree's local instances (a state seen now may be about to change). */
  reconciling?: boolean;
  /** Bytes: used by running local instances (null when nothing reports), declared by the profile, declared by all services. */
  memory: { usedBytes: number | null; profileBytes: number; fullBytes: number };
}

/** The stable JSON of `devproxy status --json` and `GET /api/status`. */
export interface StatusReport {
  daemon: { running: boolean; pid: number | null; httpPort: number; httpsPort: number | null; version: string };
  worktrees: WorktreeStatus[];
  diagnostics: DiagnosticStatus[];
}

/** Builds the report from a table and probed health; pure. */
export function buildStatus(
  table: RoutingTable,
  daemon: StatusReport['daemon'],
  health: ReadonlyMap<string, Health> = new Map(),
  runtime?: (worktreePath: string, service: string) => Record<string, unknown> | undefined,
  reconciling?: (worktreePath: string) => boolean,
): StatusReport {
  const httpUrl = (host: string) => `http://${host}${daemon.httpPort === 80 ? '' : `:${daemon.httpPort}`}`;
  const httpsUrl = (host: string) => (daemon.httpsPort === null ? null : `https://${host}${daemon.httpsPort === 443 ? '' : `:${daemon.httpsPort}`}`);
  return {
    daemon,
    worktrees: table.worktrees.map((w) => withMemory(w.memory, {
      name: w.slug,
      path: w.path,
      repo: w.repo,
      branch: w.branch ?? null,
      main: w.isMain,
      profile: w.profile ?? null,
      profiles: w.profiles ?? [],
      down: w.down === true,
      reconciling: reconciling?.(w.path) ?? false,
      services: w.hosts
        .map((host) => table.routes.get(host))
        .filter((r): r is Route => r !== undefined)
        .map((r) => {
          const extra = runtime?.(w.path, r.service);
          return {
            name: r.service,
            host: r.host,
            url: httpUrl(r.host),
            httpsUrl: httpsUrl(r.host),
            route: r.mode,
            desired: r.desired ?? r.mode,
            state: routeState(r, extra),
            target: describeTarget(r),
            health: health.get(r.host) ?? (r.desired === 'local' ? 'starting' : 'not-checked'),
            problem: r.problem ?? null,
            insecure: r.target?.kind === 'remote' && r.target.insecure,
            ...(extra ? { runtime: extra } : {}),
          };
        }),
      diagnostics: w.diagnostics.map(diagnosticStatus),
    })),
    diagnostics: table.diagnostics.map(diagnosticStatus),
  };
}

function routeState(route: Route, runtime: Record<string, unknown> | undefined): RouteState {
  if (route.target === undefined) return 'failed';
  if (route.desired === 'local' && route.mode === 'remote') return runtime?.state === 'failed' ? 'fallback' : 'starting';
  return route.mode;
}

function withMemory(declared: { profileBytes: number; fullBytes: number } | undefined, worktree: Omit<WorktreeStatus, 'memory'>): WorktreeStatus {
  const used = worktree.services.map((s) => s.runtime?.memoryBytes).filter((m): m is number => typeof m === 'number');
  return { ...worktree, memory: { usedBytes: used.length > 0 ? used.reduce((a, b) => a + b, 0) : null, profileBytes: declared?.profileBytes ?? 0, fullBytes: declared?.fullBytes ?? 0 } };
}

function diagnosticStatus(d: Diagnostic): DiagnosticStatus {
  return { ...d, text: formatDiagnostic(d) };
}

function describeTarget(route: Route): string | null {
  if (!route.target) return null;
  if (route.target.kind === 'local') return `127.0.0.1:${route.target.port}`;
  return `${route.target.origin}${route.target.basePath}`;
}

/** Probes the local targets of every route at once; remote endpoints are not probed. */
export async function probeLocalHealth(table: RoutingTable): Promise<Map<string, Health>> {
  const health = new Map<string, Health>();
  await Promise.all(
    [...table.routes.values()].map(async (route) => {
      if (route.target?.kind !== 'local') return;
      const ok = await probe(route.target.port, healthCheckFor(route.health), STATUS_PROBE_TIMEOUT_MS);
      health.set(route.host, ok ? 'healthy' : 'unhealthy');
    }),
  );
  return health;
}
