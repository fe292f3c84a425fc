import { resolve } from 'node:path';
import type { StatusReport, WorktreeStatus } from '../../daemon/status.js';
import { updateRepos } from '../../daemon/home.js';
import { loadRepoInputs, loadWorktree } from '../../daemon/worktree-loader.js';
import { DevproxyError } from '../../errors.js';
import { writeProfile } from '../../profiles/files.js';
import { didYouMean } from '../../profiles/yaml-source.js';
import { localServices } from '../../router/profile-resolution.js';
import { availableMemoryBytes, checkMemoryBudget, formatMemory } from '../../runtime/memory.js';
import { createFeatureWorktree, defaultWorktreePath, validateFeatureName } from '../../worktrees/feature-worktree.js';
import { buildRoutingTable } from '../../router/route-table.js';
import { locateRepo } from '../../worktrees/git-worktrees.js';
import { callDaemon, home, requireConfig } from '../context.js';
import { renderTable } from '../format.js';
import { ensureDaemon } from './proxy.js';

/** Longest wait for the new worktree's local services to become healthy. */
const HEALTHY_TIMEOUT_MS = 180_000;

export interface NewOptions {
  profile?: string;
  base?: string;
  path?: string;
  dir?: string;
  json?: boolean;
}

/**
 * `devproxy new <feature>` (alias `start-feature`): a worktree on a new branch, its profile file,
 * its local services started and healthy, and its URLs. Every check runs before anything is
 * created, so a refused `new` changes nothing.
 */
export async function newFeature(feature: string, opts: NewOptions): Promise<void> {
  const location = await locateRepo(resolve(opts.dir ?? process.cwd()));
  const slug = await validateFeatureName(location.main, feature);
  const config = requireConfig(location.main, await loadWorktree(location.main, undefined, {}));
  const profile = opts.profile ?? config.defaultProfile;
  if (!config.profiles.has(profile)) {
    const suggestion = didYouMean(profile, config.profiles.keys());
    throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_PROFILE', `unknown profile "${profile}"`, { hint: `${suggestion ? `did you mean "${suggestion}"? ` : ''}profiles: ${[...config.profiles.keys()].join(', ')}` });
  }
  const path = opts.path ? resolve(opts.path) : defaultWorktreePath(location.main, config, slug);
  const takenSlugs = buildRoutingTable(await loadRepoInputs(location.main)).worktrees.map((w) => w.slug);
  const local = localServices(config, { profile, services: new Map() });
  const budget = checkMemoryBudget(config, local, await availableMemoryBytes());
  const say = (line: string) => !opts.json && console.log(line);
  if (budget.exceeds) say(`warning: profile ${profile} declares ${formatMemory(budget.declaredBytes)} for local services but ${formatMemory(budget.availableBytes)} is available; consider \`--profile minimal\``);

  await createFeatureWorktree({ main: location.main, current: location.worktree, feature, slug, path, ...(opts.base ? { base: opts.base } : {}), takenSlugs });
  await writeProfile(path, { profile });
  await updateRepos(home(), (repos) => (repos.includes(location.main) ? repos : [...repos, location.main]));
  say(`created worktree ${path} on branch ${feature} (profile ${profile})`);

  const { started } = await ensureDaemon();
  if (started) say('started devproxy in the background');
  const worktree = await waitForServices(path, local, say);
  if (opts.json) {
    console.log(JSON.stringify(worktree, null, 2));
  } else {
    console.log(renderTable([['SERVICE', 'ROUTE', 'URL'], ...worktree.services.map((s) => [s.name, s.route, s.httpsUrl ?? s.url])]));
  }
  const failed = worktree.services.filter((s) => local.includes(s.name) && s.route !== 'local');
  if (failed.length > 0) {
    throw new DevproxyError('DEVPROXY_ERR_SERVICES_FAILED', `${failed.map((s) => s.name).join(', ')} did not start in worktree ${worktree.name}; the worktree stays`, { hint: `read \`devproxy logs ${failed[0]!.name} -C ${path}\`, fix it, then \`devproxy restart ${failed[0]!.name}\`` });
  }
}

/**
 * Follows the daemon's status until every local service of the worktree is healthy or failed,
 * printing each state change (starting → healthy, or failed with its last output).
 */
export async function waitForServices(path: string, local: readonly string[], say: (line: string) => void): Promise<WorktreeStatus> {
  const deadline = Date.now() + HEALTHY_TIMEOUT_MS;
  const shown = new Map<string, string>();
  const began = Date.now();
  for (;;) {
    const report = await callDaemon<StatusReport>('/api/status?probe=0');
    const worktree = report?.worktrees.find((w) => w.path === path);
    if (worktree && worktree.services.length > 0) {
      let pending = 0;
      for (const service of worktree.services.filter((s) => local.includes(s.name))) {
        const runtimeState = service.runtime?.state;
        const state = runtimeState === 'failed' || runtimeState === 'unhealthy' ? 'failed' : runtimeState === 'healthy' && service.route === 'local' ? 'healthy' : 'starting';
        if (state === 'starting') pending++;
        if (shown.get(service.name) === state) continue;
        shown.set(service.name, state);
        const elapsed = `${((Date.now() - began) / 1000).toFixed(1)} s`;
        const why = service.problem?.message ?? String(service.runtime?.detail ?? 'not healthy in time');
        say(`  ${service.name.padEnd(12)} ${state === 'failed' ? `failed after ${elapsed}: ${why}` : state === 'healthy' ? `healthy (${elapsed})` : 'starting…'}`);
      }
      if (pending === 0 || Date.now() > deadline) return worktree;
    } else if (Date.now() > deadline) {
      throw new DevproxyError('DEVPROXY_ERR_DAEMON_NOT_RUNNING', `the daemon did not pick up ${path}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
