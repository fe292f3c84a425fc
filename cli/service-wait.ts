import type { ServiceStatus, StatusReport, WorktreeStatus } from '../workspace/status.js';
import { DevproxyError } from '../errors.js';
import type { ProjectConfig } from '../profiles/schema.js';
import { DEFAULT_HEALTH_TIMEOUT_MS } from '../profiles/validate-config.js';
import { callDaemon } from './context.js';

/**
 * Beyond the longest health timeout of the services waited for: the daemon's own verdict comes
 * first, but its health clock starts only once `compose up` (image pulls, builds) returned.
 */
const VERDICT_MARGIN_MS = 120_000;
/** How often the daemon's status is read while waiting. */
const POLL_MS = 200;

/** One local service that failed or did not become healthy, as `--json` reports it. */
export interface ServiceFailure {
  service: string;
  /** `failed` (exited, could not start) or `unhealthy` (never answered within its timeout, wrong port). */
  state: string;
  /** One line: what happened (`\`vite\` exited with code 127`, `ui listens on 5173, not on PORT=41002: …`). */
  detail: string;
  /** The lines of the service's own output that say what went wrong. */
  cause: string[];
}

/** How long to wait for the verdicts on `services`: the longest `health.timeout` among them, plus a margin. */
export function verdictTimeoutMs(config: ProjectConfig, services: readonly string[]): number {
  const longest = Math.max(DEFAULT_HEALTH_TIMEOUT_MS, ...services.map((s) => config.services.get(s)?.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS));
  return longest + VERDICT_MARGIN_MS;
}

/** The failure of one service from the daemon's status, or undefined while it is starting or healthy. */
export function failureOf(service: ServiceStatus): ServiceFailure | undefined {
  return runtimeFailure(service.name, service.runtime);
}

/** The failure a local instance's runtime facts (state, detail, last output) describe, if any. */
export function runtimeFailure(service: string, runtime: Record<string, unknown> | null | undefined): ServiceFailure | undefined {
  const state = String(runtime?.state ?? '');
  if (state !== 'failed' && state !== 'unhealthy') return undefined;
  return { service, state, detail: String(runtime?.detail ?? 'not healthy in time'), cause: Array.isArray(runtime?.cause) ? (runtime.cause as string[]) : [] };
}

/** Prints a failure: its one-line detail, then the cause lines under it. */
export function sayFailure(say: (line: string) => void, failure: ServiceFailure, elapsed?: string): void {
  say(`  ${failure.service.padEnd(12)} ${failure.state === 'failed' ? 'failed' : 'not healthy'}${elapsed ? ` after ${elapsed}` : ''}: ${failure.detail}`);
  for (const line of failure.cause) say(`  ${' '.repeat(12)} │ ${line}`);
}

/**
 * Follows the daemon's status until every service of `services` in the worktree is healthy and
 * routed local, or has failed (or `timeoutMs` passed), printing each change through `say`:
 * `starting…`, `healthy (2.1 s)`, or `failed after 3.0 s: <detail>` and the cause lines.
 * Undefined when no daemon runs.
 */
export async function waitForServices(path: string, services: readonly string[], say: (line: string) => void, timeoutMs: number): Promise<WorktreeStatus | undefined> {
  const began = Date.now();
  const deadline = began + timeoutMs;
  const shown = new Map<string, string>();
  for (;;) {
    const report = await callDaemon<StatusReport>('/api/status?probe=0');
    if (!report) return undefined;
    const worktree = report.worktrees.find((w) => w.path === path);
    if (worktree && worktree.services.length > 0) {
      let pending = 0;
      for (const service of worktree.services.filter((s) => services.includes(s.name))) {
        const failure = failureOf(service);
        const state = failure ? 'failed' : service.runtime?.state === 'healthy' && service.route === 'local' ? 'healthy' : 'starting';
        if (state === 'starting') pending++;
        if (shown.get(service.name) === state) continue;
        shown.set(service.name, state);
        const elapsed = `${((Date.now() - began) / 1000).toFixed(1)} s`;
        if (failure) sayFailure(say, failure, elapsed);
        else say(`  ${service.name.padEnd(12)} ${state === 'healthy' ? `healthy (${elapsed})` : 'starting…'}`);
      }
      if (pending === 0 || Date.now() > deadline) return worktree;
    } else if (Date.now() > deadline) {
      throw new DevproxyError('DEVPROXY_ERR_DAEMON_NOT_RUNNING', `the daemon did not pick up ${path}`, { hint: 'read the daemon log (`devproxy proxy status` names it)' });
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Every service of `services` in the worktree that failed or is not (yet) healthy and local. */
export function servicesFailures(worktree: WorktreeStatus, services: readonly string[]): ServiceFailure[] {
  return worktree.services
    .filter((s) => services.includes(s.name))
    .map((s) => failureOf(s) ?? (s.runtime?.state === 'healthy' && s.route === 'local' ? undefined : { service: s.name, state: String(s.runtime?.state ?? 'starting'), detail: 'not healthy in time', cause: [] }))
    .filter((f): f is ServiceFailure => f !== undefined);
}

/**
 * The exit-code rule of `new`, `use`, `restart` and `setup`: throws DEVPROXY_ERR_SERVICES_FAILED
 * naming each service that failed with its one-line detail when there is any.
 */
export function assertServicesHealthy(worktree: { name: string; path: string }, failures: readonly ServiceFailure[]): void {
  if (failures.length === 0) return;
  const first = failures[0]!.service;
  throw new DevproxyError('DEVPROXY_ERR_SERVICES_FAILED', `${failures.map((f) => `${f.service} ${f.state === 'failed' ? 'failed' : 'is not healthy'}: ${f.detail}`).join('; ')} (worktree ${worktree.name})`, {
    hint: `fix it (\`devproxy logs ${first} -C ${worktree.path}\` shows its output), then \`devproxy restart ${first} -C ${worktree.path}\``,
  });
}
