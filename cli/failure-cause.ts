import type { ServiceStatus } from '../daemon/status.js';

/**
 * Why a local service did not come up, for the terminal: the daemon's problem text (which
 * carries the instance's last output lines) or its runtime detail. A minimal form: the shared
 * cause reporting of `new`/`restart`/`use` may refine which lines it picks.
 */
export function failureCause(service: ServiceStatus): string {
  return service.problem?.message ?? String(service.runtime?.detail ?? 'not healthy in time');
}
