/**
 * One local instance of a service in a worktree (a compose container, a `command:` process, a
 * user-run `port:`) as the runtime tracks it: its lifecycle state, where it listens, why it
 * failed. The record and its transitions are pure; the jobs that run instances (compose,
 * processes, health) change it through these functions and then signal the change.
 */
import type { LocalDefinition } from '../profiles/schema.js';
import { causeLines } from './failure-cause.js';
import type { HealthCheck } from './health.js';
import type { ProcessRecord } from './processes.js';

/** Lines of output kept with a failed instance. */
export const FAILED_LOG_LINES = 20;
/** Lines of a failed process's output searched for its cause (help text can bury the error line). */
export const CAUSE_SCAN_LINES = 400;

/** Lifecycle of one local instance. */
export type LocalServiceState = 'starting' | 'healthy' | 'unhealthy' | 'failed' | 'stopping' | 'stopped';

/** What `status` reports for one local instance of a worktree. */
export interface LocalServiceStatus {
  service: string;
  kind: LocalDefinition['kind'];
  state: LocalServiceState;
  /** Host port on 127.0.0.1 (known once the instance is up). */
  port?: number;
  /** Memory in use (Docker stats, or RSS of the process tree), from the last refresh. */
  memoryBytes?: number;
  /** Why it is failed/unhealthy, or what it is waiting for. */
  detail?: string;
  /** The instance's last output lines, kept when it failed. */
  lastLogLines?: string[];
  /** The lines of its output that say what went wrong (see causeLines), kept when it failed or never got healthy. */
  cause?: string[];
  /** Container id, for compose services. */
  containerId?: string;
  /** Process group id, for command services. */
  pid?: number;
}

/** The runtime's record of one local instance (mutable: the jobs update it in place). */
export interface Instance {
  service: string;
  kind: LocalDefinition['kind'];
  state: LocalServiceState;
  check: HealthCheck;
  port?: number;
  containerId?: string;
  containerPort?: number;
  hostNetwork?: boolean;
  process?: ProcessRecord;
  memoryBytes?: number;
  detail?: string;
  lastLogLines?: string[];
  cause?: string[];
  /** Set when Docker reported an OOM kill, so the following die says why. */
  oomKilled?: boolean;
  /** Aborts the health watch (on stop, failure, close). */
  watch?: AbortController;
  /** Set while it drains before its stop; a switch back to local within the drain keeps the instance. */
  drain?: AbortController;
  /** The stop under way (stops are idempotent: a second caller awaits the first). */
  stopping?: Promise<void>;
}

/** States in which an instance is up or coming up (it holds its port, it is watched). */
const RUNNING_STATES: ReadonlySet<string> = new Set<LocalServiceState>(['starting', 'healthy', 'unhealthy']);

/** Whether an instance in this state is up or coming up (what a profile change would stop or keep). */
export function isRunningState(state: string): boolean {
  return RUNNING_STATES.has(state);
}

/** Whether the instance is up or coming up. */
export function isRunning(inst: Instance): boolean {
  return isRunningState(inst.state);
}

/** The status view of an instance (a copy: callers may keep it). */
export function toStatus(inst: Instance): LocalServiceStatus {
  const s: LocalServiceStatus = { service: inst.service, kind: inst.kind, state: inst.state };
  if (inst.port !== undefined) s.port = inst.port;
  if (inst.memoryBytes !== undefined) s.memoryBytes = inst.memoryBytes;
  if (inst.detail !== undefined) s.detail = inst.detail;
  if (inst.lastLogLines !== undefined) s.lastLogLines = [...inst.lastLogLines];
  if (inst.cause !== undefined) s.cause = [...inst.cause];
  if (inst.containerId !== undefined) s.containerId = inst.containerId;
  if (inst.process !== undefined) s.pid = inst.process.pid;
  return s;
}

/**
 * Marks the instance failed, ends its health watch, keeps `lines` (its last output) and the
 * cause found in `scanned` (a longer stretch of output, default `lines`).
 */
export function markFailed(inst: Instance, detail: string, lines: string[], scanned: string[] = lines): void {
  inst.watch?.abort();
  inst.state = 'failed';
  inst.detail = detail;
  inst.lastLogLines = lines;
  inst.cause = causeLines(scanned);
}

/** Marks the instance healthy: what explained an earlier failure goes. */
export function markHealthy(inst: Instance): void {
  inst.state = 'healthy';
  delete inst.detail;
  delete inst.lastLogLines;
  delete inst.cause;
}

/** Marks the instance stopping (it no longer routes) and ends its health watch. */
export function markStopping(inst: Instance): void {
  inst.watch?.abort();
  inst.state = 'stopping';
}

/** Cancels an instance's drain: it is kept, or stopped at once by the caller. */
export function endDrain(inst: Instance): void {
  const drain = inst.drain;
  delete inst.drain;
  drain?.abort();
}

/** Host ports of the healthy instances (service → port): what routes locally now. */
export function healthyPorts(instances: Iterable<Instance>): Map<string, number> {
  const out = new Map<string, number>();
  for (const inst of instances) {
    if (inst.state === 'healthy' && inst.port !== undefined) out.set(inst.service, inst.port);
  }
  return out;
}
