import { DevproxyError } from '../../errors.js';
import { callDaemon, fetchDaemon, selectWorktree, type WorktreeSelection } from '../context.js';
import { assertServicesHealthy, runtimeFailure, sayFailure, type ServiceFailure } from '../service-wait.js';

/** A restart answers once the new instance is healthy: the runtime's start timeout (120 s) plus the stop grace. */
const RESTART_ANSWER_TIMEOUT_MS = 180_000;

const notRunning = () => new DevproxyError('DEVPROXY_ERR_DAEMON_NOT_RUNNING', 'devproxy is not running, so no local service runs');

/** Options of `devproxy logs`. */
export interface LogsOptions extends WorktreeSelection {
  follow?: boolean;
  /** How many past lines (a decimal string, as typed). */
  lines?: string;
}

/** `devproxy logs <service> [-f]`: the local instance's output (container logs or the process log file). */
export async function logs(service: string, opts: LogsOptions): Promise<void> {
  for await (const chunk of await serviceLogs(service, opts)) process.stdout.write(chunk);
}

/** The local instance's output as the daemon streams it (ends unless `follow`); shared by the CLI and the MCP server. */
export async function serviceLogs(service: string, opts: LogsOptions): Promise<AsyncIterable<Uint8Array>> {
  const { worktree } = await selectWorktree(opts);
  const query = new URLSearchParams({ path: worktree.path, service, lines: opts.lines ?? '100', ...(opts.follow ? { follow: '1' } : {}) });
  const response = await fetchDaemon(`/api/logs?${query}`);
  if (!response?.body) throw notRunning();
  return response.body;
}

/** `devproxy restart <service>`: a new container/process for the service, waiting until healthy; exit 1 when it is not. */
export async function restart(service: string, opts: WorktreeSelection & { json?: boolean }): Promise<void> {
  const { worktree, result, failures } = await restartService(service, opts);
  if (opts.json) console.log(JSON.stringify({ ...result, failures }, null, 2));
  else if (failures[0]) sayFailure((line) => console.log(line), failures[0]);
  else console.log(`${service} in ${worktree.name}: ${String(result.status?.state ?? 'restarted')}`);
  assertServicesHealthy(worktree, failures);
}

/** The work of `restart`, shared by the CLI and the MCP server: the daemon's answer and the failure it shows, if any. */
export async function restartService(service: string, selection: WorktreeSelection): Promise<{ worktree: { name: string; path: string }; result: { status: Record<string, unknown> | null }; failures: ServiceFailure[] }> {
  const { worktree } = await selectWorktree(selection);
  const result = await callDaemon<{ status: Record<string, unknown> | null }>('/api/restart', { method: 'POST', body: { path: worktree.path, service }, timeoutMs: RESTART_ANSWER_TIMEOUT_MS });
  if (!result) throw notRunning();
  const failure = runtimeFailure(service, result.status);
  return { worktree: { name: worktree.slug, path: worktree.path }, result, failures: failure ? [failure] : [] };
}
