/**
 * The health watch of one local instance: probes until its first verdict (healthy, or after
 * the start timeout unhealthy with the reason and its output), then, when unhealthy, keeps
 * probing in the background until it answers or the watch is aborted (stop, failure, close).
 * A process that listens, but not on its PORT, gets its verdict early, naming the port it chose.
 */
import { causeLines } from './failure-cause.js';
import { unhealthyDetail, waitHealthy } from './health.js';
import { CAUSE_SCAN_LINES, FAILED_LOG_LINES, isRunning, markHealthy, type Instance } from './instance.js';
import { portMismatch, watchPortMismatch } from './listening-ports.js';
import type { ProcessRecord } from './processes.js';

/** Slowest pause between the background probes of an unhealthy instance. */
const BACKGROUND_PROBE_MS = 1_000;

/** How one instance is watched. */
export interface HealthWatchOptions {
  /** How long the first verdict may take (ms) before the instance is reported unhealthy. */
  timeoutMs: number;
  /** Pause between probes while waiting (ms). */
  intervalMs: number;
  /** The port to probe now; undefined while there is none (a container not published yet). */
  port: () => Promise<number | undefined>;
  /** Whether the instance is still its worktree's instance of the service (not replaced or removed). */
  isCurrent: () => boolean;
  /** The last lines a process wrote, to say why it never answered. */
  lastLogLines: (record: ProcessRecord, n: number) => Promise<string[]>;
  /** The instance's state changed. */
  changed: () => void;
}

/**
 * Watches `inst` (ending any earlier watch of it). Resolves after the first verdict: healthy,
 * failed meanwhile, or (after `timeoutMs`) unhealthy; in the last case probing goes on in the
 * background until the instance answers or `inst.watch` is aborted.
 */
export async function watchHealth(inst: Instance, opts: HealthWatchOptions): Promise<void> {
  inst.watch?.abort();
  const watch = new AbortController();
  inst.watch = watch;
  const settle = (healthy: boolean): boolean => {
    if (watch.signal.aborted || !opts.isCurrent()) return true;
    if (healthy) {
      markHealthy(inst);
      opts.changed();
      return true;
    }
    return false;
  };
  // The first verdict also comes early when the process listens, but not on its PORT.
  const first = new AbortController();
  const endFirst = (): void => first.abort();
  watch.signal.addEventListener('abort', endFirst, { once: true });
  let mismatch: string | undefined;
  const record = inst.process;
  const scan = record
    ? watchPortMismatch(inst.service, record, () => inst.process === record, first.signal).then((found) => {
        if (found === undefined) return;
        mismatch = found;
        first.abort();
      })
    : undefined;
  const ok = await waitHealthy(inst.check, { port: opts.port, timeoutMs: opts.timeoutMs, intervalMs: opts.intervalMs, signal: first.signal });
  first.abort();
  watch.signal.removeEventListener('abort', endFirst);
  await scan;
  if (settle(ok)) return;
  if (mismatch === undefined && inst.process && !watch.signal.aborted) mismatch = await portMismatch(inst.service, inst.process);
  const lines = inst.process ? await opts.lastLogLines(inst.process, CAUSE_SCAN_LINES).catch((): string[] => []) : undefined;
  if (watch.signal.aborted || !opts.isCurrent() || !isRunning(inst)) return;
  inst.state = 'unhealthy';
  if (lines) {
    inst.lastLogLines = lines.slice(-FAILED_LOG_LINES);
    inst.cause = causeLines(lines);
  }
  inst.detail = mismatch ?? unhealthyDetail({ port: inst.port, timeoutMs: opts.timeoutMs, check: inst.check, isProcess: inst.process !== undefined });
  opts.changed();
  void waitHealthy(inst.check, { port: opts.port, timeoutMs: Number.MAX_SAFE_INTEGER, intervalMs: Math.max(BACKGROUND_PROBE_MS, opts.intervalMs), signal: watch.signal }).then(settle);
}
