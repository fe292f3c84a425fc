/**
 * The reconcile plan: which local instances to start and stop so that a worktree runs exactly
 * the services its profile names locally. Pure, so every rule is a unit test.
 */

/** What one reconcile does; each list is in the order the services were first named. */
export interface ReconcilePlan {
  /** Wanted local, not running: start them. */
  start: string[];
  /** Running, no longer wanted local: drain, then stop them. */
  stop: string[];
  /** Wanted local and already running: never touched (no restart). */
  keep: string[];
}

/**
 * Computes the start/stop delta between the services that should run locally and those that
 * do. A running instance that stays local is kept, never restarted. Duplicates are ignored.
 */
export function planReconcile(desiredLocal: readonly string[], running: readonly string[]): ReconcilePlan {
  const desired = [...new Set(desiredLocal)];
  const runningSet = new Set(running);
  const desiredSet = new Set(desired);
  return {
    start: desired.filter((s) => !runningSet.has(s)),
    stop: [...runningSet].filter((s) => !desiredSet.has(s)),
    keep: desired.filter((s) => runningSet.has(s)),
  };
}
