import type { Logger } from '../logger.js';
import { desiredLocalServices } from '../router/profile-resolution.js';
import type { RouteProblem, RoutingTable, WorktreeInput } from '../router/types.js';
import type { LocalRuntime, LocalServiceStatus } from '../runtime/local-runtime.js';
import type { RuntimeView } from '../workspace/watcher.js';

/**
 * Drives the local runtime from the routing table: whenever a worktree's files change, its
 * local services are reconciled to what its live profile asks (start what became local, stop
 * what became remote after a drain, touch nothing else). It also tells the router which local
 * instances are healthy (make-before-break) and which failed.
 */
export class RuntimeController implements RuntimeView {
  private readonly inFlight = new Map<string, Promise<unknown>>();
  /**
   * Worktrees whose removal is under way. Every finished removal rebuilds the table, which
   * reconciles again: without this, each rebuild started one more removal of every worktree
   * still pending (a quadratic storm when many worktrees go at once).
   */
  private readonly removing = new Set<string>();
  /** The last reconcile of a worktree failed as a whole (Docker down, compose file missing…). */
  private readonly reconcileErrors = new Map<string, { services: string[]; problem: RouteProblem }>();
  /** The worktree environment for its local instances; reconciles wait for it (the ports must be bound). */
  private environmentFor?: (input: WorktreeInput, slug: string, local: string[]) => Record<string, string>;

  constructor(
    private readonly runtime: LocalRuntime,
    private readonly logger: Logger,
    /** Called when a reconcile fails, so the table shows the failure on the routes. */
    private readonly onFailure: () => void,
  ) {}

  healthyPorts(worktreePath: string): Map<string, number> {
    return this.runtime.healthyPorts(worktreePath);
  }

  failures(worktreePath: string): Map<string, RouteProblem> {
    const failures = new Map<string, RouteProblem>();
    const whole = this.reconcileErrors.get(worktreePath);
    const healthy = this.runtime.healthyPorts(worktreePath);
    for (const service of whole?.services ?? []) if (!healthy.has(service)) failures.set(service, whole!.problem);
    for (const s of this.runtime.status(worktreePath)) {
      // A user-run `port:` service that is not up yet is waited for, not failed: nothing of devproxy's broke.
      if (s.state !== 'failed' && !(s.state === 'unhealthy' && s.kind !== 'port')) continue;
      const lines = s.cause ?? [];
      failures.set(s.service, {
        message: `the local ${s.kind === 'compose' ? 'container' : 'process'} of "${s.service}" ${s.state === 'failed' ? 'failed' : 'is not healthy'}${s.detail ? `: ${s.detail}` : ''}${lines.length > 0 ? `\nlast output:\n${lines.join('\n')}` : ''}`,
        hint: `read \`devproxy logs ${s.service}\`, fix it and \`devproxy restart ${s.service}\`, or route it remote with \`devproxy use --service ${s.service}=remote\``,
      });
    }
    return failures;
  }

  /** Runtime facts about one service for `status` (state, memory). */
  statusOf(worktreePath: string, service: string): LocalServiceStatus | undefined {
    return this.runtime.status(worktreePath).find((s) => s.service === service);
  }

  /** Starts reconciling: from now on file changes start and stop local instances. */
  start(environmentFor: (input: WorktreeInput, slug: string, local: string[]) => Record<string, string>, table: RoutingTable, inputs: readonly WorktreeInput[]): void {
    this.environmentFor = environmentFor;
    this.reconcile(table, inputs);
  }

  /** Reconciles the given worktrees (all of them at start-up) and forgets worktrees git no longer lists. */
  reconcile(table: RoutingTable, inputs: readonly WorktreeInput[]): void {
    if (!this.environmentFor) return;
    for (const input of inputs) {
      const routed = table.worktrees.find((w) => w.path === input.path);
      // A worktree without a usable config, or shadowed by another with its slug, runs nothing.
      if (!input.config || !routed?.hosts.length) continue;
      const slug = routed.slug;
      // A worktree whose set-up has not succeeded, or that is down, runs nothing locally (its remotes serve).
      const local = desiredLocalServices({ ...input, config: input.config });
      const environmentFor = this.environmentFor;
      const spec = { repo: input.repo, path: input.path, slug, config: input.config, local };
      // An unset ${env:…} reference fails this worktree's reconcile (shown on its routes), not the daemon.
      const work = Promise.resolve().then(() => this.runtime.reconcile({ ...spec, env: environmentFor(input, slug, local) }));
      this.track(
        input.path,
        work.then(
          () => this.reconcileErrors.delete(input.path),
          (error: unknown) => {
            this.reconcileErrors.set(input.path, { services: spec.local, problem: { message: (error as Error).message, hint: (error as { hint?: string }).hint ?? 'run `devproxy status` and the daemon log for details' } });
            this.onFailure();
            throw error;
          },
        ),
      );
    }
    const known = new Set(table.worktrees.map((w) => w.path));
    for (const path of this.runtime.worktreePaths()) {
      if (known.has(path) || this.removing.has(path)) continue;
      this.removing.add(path);
      const removal = this.runtime.removeWorktree(path).then(() => this.logger.info(`${path}: the worktree is gone; its local services are stopped`));
      this.track(path, removal.finally(() => this.removing.delete(path)));
    }
  }

  /** Whether the daemon is still starting or stopping the worktree's local instances. */
  reconciling(worktreePath: string): boolean {
    return this.inFlight.has(worktreePath);
  }

  private track(path: string, work: Promise<unknown>): void {
    const tracked = work.then(
      () => undefined,
      (error: unknown) => this.logger.warn(`runtime ${path}: ${(error as Error).message}`),
    );
    this.inFlight.set(path, tracked);
    void tracked.finally(() => {
      if (this.inFlight.get(path) === tracked) this.inFlight.delete(path);
    });
  }
}
