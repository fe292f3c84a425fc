/**
 * The runtime's events: what it emits (one change signal: the daemon rebuilds its routing table
 * and status) and what it makes of what it observes (a Docker container event, a process exit,
 * the engine going away). The readings of observed events are pure, so each rule is a unit test;
 * the runtime applies them to its instances.
 */
import type { Logger } from '../logger.js';
import type { OwnedContainerEvent } from './docker-observer.js';
import { isRunning, type Instance } from './instance.js';

/** Why a compose instance failed when the engine went away (a resync looks for exactly this). */
export const DOCKER_UNREACHABLE_DETAIL = 'the Docker engine is not reachable';

/** Why a healthy container turned unhealthy by its own health check. */
export const CONTAINER_UNHEALTHY_DETAIL = 'the container\'s own health check reports unhealthy';

/** Calls the runtime's `onChange`, except after close; a throwing listener is logged, never rethrown. */
export class ChangeSignal {
  private closed = false;

  constructor(
    private readonly onChange: (() => void) | undefined,
    private readonly logger: Logger | undefined,
  ) {}

  /** Any state or port changed, or Docker came or went. */
  emit(): void {
    if (this.closed) return;
    try {
      this.onChange?.();
    } catch (error) {
      this.logger?.error(`runtime: onChange failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** No more signals (the runtime is closing). */
  close(): void {
    this.closed = true;
  }
}

/**
 * What a container event means for the instance it names:
 * - `oom`: remember the OOM kill, so that the die that follows says why;
 * - `died`: a running instance's container exited: it failed;
 * - `restarted`: a restart policy brought a failed one back: watch it become healthy again;
 * - `unhealthy` / `healthy`: the container's own health check changed its verdict;
 * - `ignore`: not ours (another container, a stopped instance) or no change.
 */
export type ContainerEventReading = 'oom' | 'died' | 'restarted' | 'unhealthy' | 'healthy' | 'ignore';

/** Reads a container event against the instance tracked for its service (pure). */
export function readContainerEvent(inst: Instance | undefined, event: OwnedContainerEvent): ContainerEventReading {
  if (!inst || inst.kind !== 'compose' || inst.containerId !== event.containerId) return 'ignore';
  if (event.action === 'oom') return 'oom';
  if (event.action === 'die') return isRunning(inst) ? 'died' : 'ignore';
  if (event.action === 'start') return inst.state === 'failed' ? 'restarted' : 'ignore';
  if (event.action === 'health_status') {
    if (event.health === 'unhealthy' && inst.state === 'healthy') return 'unhealthy';
    if (event.health === 'healthy' && inst.state === 'unhealthy' && inst.port !== undefined) return 'healthy';
  }
  return 'ignore';
}

/** Why a process ended, as `status` shows it: `` `npm run dev` exited with code 1 ``. */
export function processExitDetail(command: string, code: number | null, signal: NodeJS.Signals | null): string {
  const how = signal ? `was killed by ${signal}` : code === null ? 'exited' : `exited with code ${code}`;
  return `\`${command}\` ${how}`;
}

/** Why a container ended, with the fix when the kernel killed it for its memory limit. */
export function containerExitDetail(exitCode: number | undefined, oomKilled: boolean): string {
  const limit = oomKilled ? ' (out of memory: raise `memory:` of the service in devproxy.yaml)' : '';
  const code = exitCode === undefined ? '' : ` with code ${exitCode}`;
  return `container exited${code}${limit}`;
}
