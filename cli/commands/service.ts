import { DevproxyError } from '../../errors.js';
import { callDaemon, fetchDaemon, selectWorktree, type WorktreeSelection } from '../context.js';

const notRunning = () => new DevproxyError('DEVPROXY_ERR_DAEMON_NOT_RUNNING', 'devproxy is not running, so no local service runs');

/** `devproxy logs <service> [-f]`: the local instance's output (container logs or the process log file). */
export async function logs(service: string, opts: WorktreeSelection & { follow?: boolean; lines?: string }): Promise<void> {
  const { worktree } = await selectWorktree(opts);
  const query = new URLSearchParams({ path: worktree.path, service, lines: opts.lines ?? '100', ...(opts.follow ? { follow: '1' } : {}) });
  const response = await fetchDaemon(`/api/logs?${query}`);
  if (!response?.body) throw notRunning();
  for await (const chunk of response.body) process.stdout.write(chunk);
}

/** `devproxy restart <service>`: a new container/process for the service, waiting until healthy. */
export async function restart(service: string, opts: WorktreeSelection & { json?: boolean }): Promise<void> {
  const { worktree } = await selectWorktree(opts);
  const result = await callDaemon<{ status: { state: string; detail?: string } | null }>('/api/restart', { method: 'POST', body: { path: worktree.path, service } });
  if (!result) throw notRunning();
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  else console.log(`${service} in ${worktree.slug}: ${result.status?.state ?? 'restarted'}${result.status?.detail ? ` (${result.status.detail})` : ''}`);
  if (result.status?.state === 'failed') throw new DevproxyError('DEVPROXY_ERR_SERVICES_FAILED', `${service} failed after the restart`);
}
