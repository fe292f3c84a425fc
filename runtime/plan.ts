/**
 * The reconcile plan: which local instances to start and stop so that a worktree runs exactly
 * the services its profile names locally. Pure, so every rule is a unit test.
 */
import { DevproxyError } from '../errors.js';
import type { LocalDefinition, ProjectConfig, ServiceConfig } from '../profiles/schema.js';
import { isRunning, type Instance } from './instance.js';

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

/** Services with a live instance: running, or draining (a switch back keeps those). */
export function liveServices(instances: Iterable<Instance>): string[] {
  return [...instances].filter((i) => isRunning(i) || i.drain !== undefined).map((i) => i.service);
}

/**
 * Instances nobody wants any more that are not running (failed, say) and not draining: they are
 * removed without a drain, since nothing routes to them.
 */
export function deadLeftovers(instances: Iterable<Instance>, desiredLocal: readonly string[]): Instance[] {
  const desired = new Set(desiredLocal);
  return [...instances].filter((i) => !desired.has(i.service) && !isRunning(i) && i.drain === undefined);
}

/** The service and its `local:` definition; throws DEVPROXY_ERR_UNKNOWN_SERVICE when it has none. */
export function localDefinitionOf(config: ProjectConfig, name: string): { service: ServiceConfig; local: LocalDefinition } {
  const service = config.services.get(name);
  if (!service) {
    throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_SERVICE', `service "${name}" is not defined in devproxy.yaml (known: ${[...config.services.keys()].join(', ')})`);
  }
  if (!service.local) {
    throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_SERVICE', `service "${name}" has no \`local:\` definition, so it cannot run locally`, {
      hint: `add \`local:\` (compose, command or port) to services.${name} in devproxy.yaml, or keep it remote`,
    });
  }
  return { service, local: service.local };
}

/** The error for a worktree the runtime does not track. */
export function unknownWorktree(path: string): DevproxyError {
  return new DevproxyError('DEVPROXY_ERR_UNKNOWN_WORKTREE', `the runtime has no local services for ${path}`);
}
