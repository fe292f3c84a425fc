import { resolve } from 'node:path';
import { updateRepos } from '../../workspace/home.js';
import { loadRepoInputs, loadWorktree } from '../../workspace/worktree-loader.js';
import { DevproxyError } from '../../errors.js';
import { writeProfile } from '../../profiles/files.js';
import { didYouMean } from '../../profiles/yaml-source.js';
import { localServices } from '../../router/profile-resolution.js';
import { availableMemoryBytes, checkMemoryBudget, formatMemory } from '../../runtime/memory.js';
import { createFeatureWorktree, defaultWorktreePath, validateFeatureName } from '../../worktrees/feature-worktree.js';
import { buildRoutingTable } from '../../router/route-table.js';
import { locateRepo } from '../../workspace/git-worktrees.js';
import { home, requireConfig } from '../context.js';
import type { WorktreeStatus } from '../../workspace/status.js';
import { assertServicesHealthy, servicesFailures, verdictTimeoutMs, waitForServices, type ServiceFailure } from '../service-wait.js';
import { releaseSetupLock, runSetupWithProgress } from './setup.js';
import { renderTable } from '../format.js';
import { ensureDaemon } from './proxy.js';

export interface NewOptions {
  profile?: string;
  base?: string;
  path?: string;
  dir?: string;
  json?: boolean;
}

/**
 * `devproxy new <feature>` (alias `start-feature`): a worktree on a new branch, its profile file,
 * its `setup:` run (copy, commands) before any service starts, its local services started and
 * healthy, and its URLs. Every check runs before anything is created, so a refused `new` changes
 * nothing; a failed set-up or service exits 1 and leaves the worktree for `devproxy setup` /
 * `devproxy restart` to retry.
 */
export async function newFeature(feature: string, opts: NewOptions): Promise<void> {
  const { worktree, failures } = await createFeature(feature, opts, (line) => !opts.json && console.log(line));
  if (opts.json) {
    console.log(JSON.stringify({ ...worktree, failures }, null, 2));
  } else {
    console.log(renderTable([['SERVICE', 'ROUTE', 'URL'], ...worktree.services.map((s) => [s.name, s.route, s.httpsUrl ?? s.url])]));
  }
  assertServicesHealthy(worktree, failures);
}

/**
 * The work of `new`, shared by the CLI and the MCP server: everything up to the services' verdict,
 * told step by step to `say`. Failed services are returned, not thrown (the worktree stays).
 */
export async function createFeature(feature: string, opts: NewOptions, say: (line: string) => void): Promise<{ worktree: WorktreeStatus; failures: ServiceFailure[] }> {
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
  if (budget.exceeds) say(`warning: profile ${profile} declares ${formatMemory(budget.declaredBytes)} for local services but ${formatMemory(budget.availableBytes)} is available; consider \`--profile minimal\``);

  const setupPending = config.setup !== undefined && (config.setup.copy.length > 0 || config.setup.run.length > 0);
  await createFeatureWorktree({ main: location.main, current: location.worktree, feature, slug, path, ...(opts.base ? { base: opts.base } : {}), takenSlugs, setupPending });
  await writeProfile(path, { profile });
  await updateRepos(home(), (repos) => (repos.includes(location.main) ? repos : [...repos, location.main]));
  say(`created worktree ${path} on branch ${feature} (profile ${profile})`);
  if (setupPending) {
    // The worktree's own devproxy.yaml (a --base may carry another set-up than the current checkout's).
    const own = (await loadWorktree(path, config, {})).config ?? config;
    try {
      await runSetupWithProgress({ main: location.main, worktree: path, slug, config: own, say });
    } catch (error) {
      const { code, message, hint } = error as DevproxyError;
      if (opts.json) console.log(JSON.stringify({ path, branch: feature, profile, setup: { ok: false, error: { code, message, hint } } }, null, 2));
      throw error;
    }
    await releaseSetupLock(location.main, path);
  }

  const { started } = await ensureDaemon();
  if (started) say('started devproxy in the background');
  const worktree = await waitForServices(path, local, say, verdictTimeoutMs(config, local));
  if (!worktree) throw new DevproxyError('DEVPROXY_ERR_DAEMON_NOT_RUNNING', 'the daemon stopped while the services were starting');
  return { worktree, failures: servicesFailures(worktree, local) };
}
