import { DevproxyError } from '../../errors.js';
import { callDaemon, fetchDaemon, selectWorktree, type WorktreeSelection } from '../context.js';
import { assertServicesHealthy, runtimeFailure, sayFailure } from '../service-wait.js';

/** A restart answers once the new instance is healthy: the runtime's start timeout (120 s) plus the stop grace. */
const RESTART_ANSWER_TIMEOUT_MS = 180_000;

const notRunning = () => new DevproxyError('DEVPROXY_ERR_DAEMON_NOT_RUNNING', 'devproxy is not running, so no local service runs');

/** `devproxy logs <service> [-f]`: the local instance's output (container logs or the process log file). */
export async function logs(service: string, opts: WorktreeSelection & { follow?: boolean; lines?: string }): Promise<void> {
  const { worktree } = await selectWorktree(opts);
  const query = new URLSearchParams({ path: worktree.path, service, lines: opts.lines ?? '100', ...(opts.follow ? { follow: '1' } : {}) });
  const response = await fetchDaemon(`/api/logs?${query}`);
  if (!response?.body) throw notRunning();
  for await (const chunk of response.body) process.stdout.write(chunk);
}

/** `devproxy restart <service>`: a new container/process for the service, waiting until healthy; exit 1 when it is not. */
export async function restart(service: string, opts: WorktreeSelection & { json?: boolean }): Promise<void> {
  const { worktree } = await selectWorktree(opts);
  const result = await callDaemon<{ status: Record<string, unknown> | null }>('/api/restart', { method: 'POST', body: { path: worktree.path, service }, timeoutMs: RESTART_ANSWER_TIMEOUT_MS });
  if (!result) throw notRunning();
  const failure = runtimeFailure(service, result.status);
  if (opts.json) console.log(JSON.stringify({ ...result, failures: failure ? [failure] : [] }, null, 2));
  else if (failure) sayFailure((line) => console.log(line), failure);
  else console.log(`${service} in ${worktree.slug}: ${String(result.status?.state ?? 'restarted')}`);
  assertServicesHealthy({ name: worktree.slug, path: worktree.path }, failure ? [failure] : []);
}
