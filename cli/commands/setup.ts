import { setupLogPath } from '../../home-paths.js';
import type { StatusReport } from '../../workspace/status.js';
import type { ProjectConfig } from '../../profiles/schema.js';
import { localServices } from '../../router/profile-resolution.js';
import { finishSetup } from '../../worktrees/feature-worktree.js';
import { runWorktreeSetup, type SetupResult } from '../../worktrees/setup.js';
import { callDaemon, home, requireConfig, selectWorktree, type WorktreeSelection } from '../context.js';
import { assertServicesHealthy, failureOf, servicesFailures, verdictTimeoutMs, waitForServices } from '../service-wait.js';

/**
 * Runs the config's `setup:` in a worktree, printing what it copies and each step with its time;
 * throws DEVPROXY_ERR_SETUP_FAILED at the first failing step (the worktree stays as it is).
 */
export async function runSetupWithProgress(opts: { main: string; worktree: string; slug: string; config: ProjectConfig; say: (line: string) => void }): Promise<SetupResult> {
  const { say } = opts;
  const logFile = setupLogPath(home(), opts.slug);
  return runWorktreeSetup({
    main: opts.main,
    worktree: opts.worktree,
    setup: opts.config.setup ?? { copy: [], run: [] },
    logFile,
    onEvent: (event) => {
      if (event.kind === 'copied') say(`  setup: copied ${event.file}`);
      else if (event.kind === 'kept') say(`  setup: kept ${event.file} (it exists in the worktree)`);
      else if (event.kind === 'unmatched') say(`  warning: setup.copy "${event.pattern}" matches no file in ${opts.main}`);
      else if (event.kind === 'step') say(`  setup ${event.index}/${event.total}: ${event.command} …`);
      else say(`  setup ${event.index}/${event.total}: done in ${(event.elapsedMs / 1000).toFixed(1)} s`);
    },
  });
}

/**
 * `devproxy setup [-C DIR | --worktree NAME]`: runs (again) the `setup:` of devproxy.yaml in a
 * worktree, e.g. after it failed in `devproxy new`. On success the worktree's local services
 * start (failed ones are restarted) and it waits until they are healthy, exiting 1 when one is not.
 */
export async function setup(opts: WorktreeSelection & { json?: boolean }): Promise<void> {
  const { location, worktree, input } = await selectWorktree(opts);
  const config = requireConfig(worktree.path, input);
  const say = (line: string) => !opts.json && console.log(line);
  if (!config.setup) say(`${worktree.slug}: devproxy.yaml has no \`setup:\` block; nothing to set up`);
  const result = config.setup ? await runSetupWithProgress({ main: location.main, worktree: worktree.path, slug: worktree.slug, config, say }) : undefined;
  await releaseSetupLock(location.main, worktree.path);
  const local = localServices(config, input.profile);
  // Instances that failed before the set-up (`vite: not found`) get a new start now.
  const before = await callDaemon<StatusReport>('/api/status?probe=0');
  const stale = before?.worktrees.find((w) => w.path === worktree.path)?.services.filter((s) => local.includes(s.name) && failureOf(s)) ?? [];
  for (const service of stale) {
    say(`  ${service.name.padEnd(12)} restarting…`);
    await callDaemon('/api/restart', { method: 'POST', body: { path: worktree.path, service: service.name } });
  }
  const status = local.length > 0 ? await waitForServices(worktree.path, local, say, verdictTimeoutMs(config, local)) : undefined;
  const failures = status ? servicesFailures(status, local) : [];
  if (opts.json) console.log(JSON.stringify({ worktree: worktree.slug, path: worktree.path, setup: result ?? null, services: status?.services ?? null, failures }, null, 2));
  else if (!status && local.length > 0) say('devproxy is not running: the local services start with `devproxy proxy start`');
  else say(`${worktree.slug}: set up${local.length > 0 ? `; ${local.join(', ')} healthy` : ''}`);
  if (status) assertServicesHealthy(status, failures);
}

/**
 * Ends the worktree's set-up lock and tells a running daemon at once. The daemon also watches
 * git's `locked` file, but a lock that ends while its folder is brand new can pass before the
 * watcher covers that folder: the worktree then stayed without its local services.
 */
export async function releaseSetupLock(main: string, path: string): Promise<void> {
  await finishSetup(main, path);
  await callDaemon('/api/reload', { method: 'POST' });
}
