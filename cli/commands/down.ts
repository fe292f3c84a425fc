import type { StatusReport, WorktreeStatus } from '../../workspace/status.js';
import { readRepos } from '../../workspace/home.js';
import { readDownWorktrees, updateDownWorktrees } from '../../workspace/down-state.js';
import { loadRepoInputs } from '../../workspace/worktree-loader.js';
import { DevproxyError } from '../../errors.js';
import { localServices } from '../../router/profile-resolution.js';
import { buildRoutingTable } from '../../router/route-table.js';
import { LocalRuntime } from '../../runtime/local-runtime.js';
import { callDaemon, home, selectWorktree, type WorktreeSelection } from '../context.js';
import { sayFailure } from '../service-wait.js';
import { failureOfRoute, waitForRoutes } from '../wait-routes.js';

/** Longest wait for the daemon to drain and stop a worktree's instances. */
const STOP_TIMEOUT_MS = 120_000;
/** Longest wait for `up` (each service's own health timeout ends it sooner). */
const UP_TIMEOUT_MS = 600_000;
const POLL_MS = 100;

export interface DownOptions extends WorktreeSelection {
  /** Every worktree of every registered repository. */
  all?: boolean;
  json?: boolean;
}

/**
 * `devproxy down [--all]`: stops every local instance devproxy started for the worktree (or all
 * of them) and routes their services remote meanwhile. Profile files stay untouched; the
 * worktree stays down (across daemon restarts too) until `devproxy up` or `devproxy use`.
 */
export async function down(opts: DownOptions): Promise<void> {
  const { paths, stopped } = await markDown(opts);
  if (opts.json) console.log(JSON.stringify({ down: paths, stopped }, null, 2));
  else {
    for (const path of paths) console.log(`${path}: down; ${stopped[path]?.length ? `stopped ${stopped[path]!.join(', ')}` : 'nothing was running'}; every route is remote until \`devproxy up\``);
  }
}

/**
 * Marks the selected worktrees down (down.json) and stops their instances; answers the paths and,
 * per path, the services that were running.
 */
export async function markDown(opts: DownOptions): Promise<{ paths: string[]; stopped: Record<string, string[]> }> {
  const paths = await targetPaths(opts);
  await updateDownWorktrees(home(), (set) => paths.forEach((p) => set.add(p)));
  return { paths, stopped: await stopInstances(paths) };
}

/**
 * Makes every instance of `paths` stop: through the daemon when one runs (it reconciles a down
 * worktree to no local service, after the drain), else here (the processes and containers an
 * earlier daemon left). Answers, per path, the services the daemon reported running.
 */
export async function stopInstances(paths: string[]): Promise<Record<string, string[]>> {
  const stopped: Record<string, string[]> = {};
  const before = await callDaemon<StatusReport>('/api/status?probe=0');
  for (const w of before?.worktrees ?? []) {
    if (paths.includes(w.path)) stopped[w.path] = w.services.filter((s) => s.runtime && s.runtime.state !== 'failed').map((s) => s.name);
  }
  if (before) {
    await waitStopped(paths);
    return stopped;
  }
  // No daemon: stop what an earlier one left (only then may this process write processes.json).
  const runtime = new LocalRuntime({ home: home(), memoryIntervalMs: 0 });
  try {
    for (const path of paths) await runtime.stopWorktree(path);
  } finally {
    await runtime.close();
  }
  return stopped;
}

/** `devproxy up [--all]`: takes worktrees out of the down list and waits for their local services. */
export async function up(opts: DownOptions): Promise<void> {
  const downNow = await readDownWorktrees(home());
  const paths = (await targetPaths(opts)).filter((path) => !opts.all || downNow.has(path));
  await updateDownWorktrees(home(), (set) => paths.forEach((p) => set.delete(p)));
  const failed: string[] = [];
  const results: Array<{ worktree: string; ready: string[]; failed: string[]; pending: string[] }> = [];
  for (const path of paths) {
    const goal = await goalOf(path);
    if (!goal) continue;
    const outcome = await waitForRoutes(path, goal, { timeoutMs: UP_TIMEOUT_MS });
    const name = outcome.worktree?.name ?? path;
    results.push({ worktree: name, ready: outcome.ready.filter((s) => goal.local.has(s.name)).map((s) => s.name), failed: outcome.failed.map((s) => s.name), pending: outcome.pending });
    if (!opts.json) {
      if (!outcome.daemon) console.log(`${name}: up; devproxy is not running, its services start with it (\`devproxy proxy start\`)`);
      else console.log(`${name}: up (profile ${goal.profile}); local: ${[...goal.local].join(', ') || 'none'}`);
      for (const s of outcome.failed) sayFailure((line) => console.log(line), failureOfRoute(s));
    }
    failed.push(...outcome.failed.map((s) => `${s.name} in ${name}`));
  }
  if (opts.json) console.log(JSON.stringify({ up: results }, null, 2));
  if (failed.length > 0) throw new DevproxyError('DEVPROXY_ERR_SERVICES_FAILED', `${failed.join(', ')} did not become healthy`);
}

/** The selected worktree, or with `all` every worktree of every registered repository. */
async function targetPaths(opts: DownOptions): Promise<string[]> {
  if (!opts.all) return [(await selectWorktree(opts)).worktree.path];
  const inputs = (await Promise.all((await readRepos(home())).map((repo) => loadRepoInputs(repo).catch(() => [])))).flat();
  return buildRoutingTable(inputs).worktrees.map((w) => w.path);
}

async function goalOf(path: string): Promise<{ profile: string; local: Set<string> } | undefined> {
  const { worktree, input } = await selectWorktree({ dir: path });
  if (!input.config || !worktree.profile) return undefined;
  return { profile: worktree.profile, local: new Set(localServices(input.config, input.profile)) };
}

/** Polls the daemon until each worktree is down, settled, and has no local instance left. */
async function waitStopped(paths: string[]): Promise<void> {
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  const done = (w: WorktreeStatus | undefined) => w === undefined || (w.down && !w.reconciling && w.services.every((s) => s.runtime === undefined));
  while (Date.now() < deadline) {
    const report = await callDaemon<StatusReport>('/api/status?probe=0');
    if (!report || paths.every((p) => done(report.worktrees.find((w) => w.path === p)))) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new DevproxyError('DEVPROXY_ERR_SERVICES_FAILED', `the daemon did not stop the local instances within ${STOP_TIMEOUT_MS / 1000} s`, { hint: 'read the daemon log (`devproxy proxy status` names it), then run the command again' });
}
