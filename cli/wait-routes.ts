import type { ServiceStatus, StatusReport, WorktreeStatus } from '../workspace/status.js';
import { callDaemon } from './context.js';
import { failureOf, type ServiceFailure } from './service-wait.js';

/** Pause between two status polls while waiting for routes. */
const POLL_MS = 100;
/** How long a worktree may look unroutable as asked (a file problem) before the wait gives up. */
const STUCK_AFTER_MS = 3_000;

/** Where one service is on its way to the route it should have. */
export type RouteProgress = 'pending' | 'starting' | 'ready' | 'failed';

/** What a worktree's routes should become: the profile the daemon must show, and its local services. */
export interface RouteGoal {
  profile: string;
  local: ReadonlySet<string>;
}

/** The outcome of {@link waitForRoutes}. */
export interface RoutesOutcome {
  /** The worktree as the daemon reported it last; undefined when the daemon never showed it. */
  worktree: WorktreeStatus | undefined;
  /** Services that reached their target. */
  ready: ServiceStatus[];
  /** Local services that failed or did not become healthy within the service's timeout. */
  failed: ServiceStatus[];
  /** Services still on their way when the wait ended (deadline, or not waiting at all). */
  pending: string[];
  /** False when no daemon answered. */
  daemon: boolean;
  /** The daemon's last report (its repository-level diagnostics say why a worktree is not routed); undefined without a daemon. */
  report?: StatusReport;
}

/**
 * Pure: where each service of a reported worktree stands against the goal. A remote service is
 * ready once its route is remote; a local one once its route is local (its instance passed its
 * health check, make-before-break), failed once its instance failed or timed out and the
 * daemon is no longer reconciling (so a stale failure from before the switch is not read).
 */
export function routeProgress(worktree: WorktreeStatus | undefined, goal: RouteGoal): Map<string, RouteProgress> {
  const progress = new Map<string, RouteProgress>();
  if (!worktree || worktree.profile !== goal.profile || worktree.services.length === 0) return progress;
  for (const s of worktree.services) {
    const wantLocal = goal.local.has(s.name);
    if (s.desired !== (wantLocal ? 'local' : 'remote')) progress.set(s.name, 'pending');
    else if (!wantLocal) progress.set(s.name, s.route === 'remote' ? 'ready' : 'pending');
    else if (s.route === 'local' && s.runtime?.state === 'healthy') progress.set(s.name, 'ready');
    else if (!worktree.reconciling && (s.runtime === undefined ? s.problem !== null : s.runtime.state === 'failed' || s.runtime.state === 'unhealthy')) progress.set(s.name, 'failed');
    else progress.set(s.name, s.runtime ? 'starting' : 'pending');
  }
  return progress;
}

/**
 * Follows the daemon's status until every route of the worktree reached its goal or one of its
 * local services failed (the others still get their verdict), or until `timeoutMs`. `onProgress`
 * hears each change of a service's progress. With `wait: false` it reads the status once.
 */
export async function waitForRoutes(path: string, goal: RouteGoal, opts: { timeoutMs: number; wait?: boolean; onProgress?: (service: ServiceStatus, progress: RouteProgress) => void }): Promise<RoutesOutcome> {
  const deadline = Date.now() + opts.timeoutMs;
  const shown = new Map<string, RouteProgress>();
  let blockedSince: number | undefined;
  for (;;) {
    const report = await callDaemon<StatusReport>('/api/status?probe=0');
    if (!report) return { worktree: undefined, ready: [], failed: [], pending: [...goal.local], daemon: false };
    const worktree = report.worktrees.find((w) => w.path === path);
    const progress = routeProgress(worktree, goal);
    for (const s of worktree?.services ?? []) {
      const p = progress.get(s.name);
      if (p === undefined || shown.get(s.name) === p) continue;
      shown.set(s.name, p);
      opts.onProgress?.(s, p);
    }
    const settled = progress.size > 0 && [...progress.values()].every((p) => p === 'ready' || p === 'failed');
    // A worktree the daemon cannot route as asked (a broken file keeps its last good routes, a
    // slug clash routes nothing) would never settle: once that lasts longer than the watchers
    // take to apply a file, stop and let `status` say why.
    const unapplied = progress.size === 0 || [...progress.values()].includes('pending');
    // A worktree the daemon does not list at all (its repository is not registered) is blocked too.
    const blocked = worktree === undefined || worktree.services.length === 0 || (unapplied && worktree.diagnostics.some((d) => d.severity !== 'warning'));
    blockedSince = blocked ? (blockedSince ?? Date.now()) : undefined;
    const stuck = blockedSince !== undefined && Date.now() - blockedSince > STUCK_AFTER_MS;
    if (settled || stuck || opts.wait === false || Date.now() > deadline) {
      const of = (wanted: RouteProgress) => (worktree?.services ?? []).filter((s) => progress.get(s.name) === wanted);
      const pending = progress.size === 0 ? (worktree?.services.map((s) => s.name) ?? [...goal.local]) : [...progress].filter(([, p]) => p === 'pending' || p === 'starting').map(([n]) => n);
      return { worktree, ready: of('ready'), failed: of('failed'), pending, daemon: true, report };
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** A failed route's cause: the instance's own (state, detail, output), else the route's problem (a reconcile that failed as a whole). */
export function failureOfRoute(service: ServiceStatus): ServiceFailure {
  return failureOf(service) ?? { service: service.name, state: 'failed', detail: (service.problem?.message ?? 'not healthy in time').split('\n')[0]!, cause: [] };
}
