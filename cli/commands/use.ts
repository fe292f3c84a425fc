import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { acquireLock } from '../../daemon/home.js';
import type { StatusReport } from '../../daemon/status.js';
import { DevproxyError } from '../../errors.js';
import { configPath, profilePath, writeProfile } from '../../profiles/files.js';
import { editProfileText } from '../../profiles/profile-edit.js';
import type { ProjectConfig, RouteMode } from '../../profiles/schema.js';
import { validateProfile } from '../../profiles/validate-profile.js';
import { localServices } from '../../router/profile-resolution.js';
import { didYouMean } from '../../profiles/yaml-source.js';
import { availableMemoryBytes, checkMemoryBudget, formatMemory } from '../../runtime/memory.js';
import { planReconcile } from '../../runtime/plan.js';
import { callDaemon, requireConfig, selectWorktree, type WorktreeSelection } from '../context.js';
import { renderTable, routeLabel } from '../format.js';
import { assertServicesHealthy, failureOf, sayFailure } from '../service-wait.js';

/** How long `use` waits for the daemon to report the new routes. */
const APPLY_TIMEOUT_MS = 3_000;

export interface UseOptions extends WorktreeSelection {
  /** `--service api=local` (repeatable). */
  service?: string[];
  json?: boolean;
  /** commander's `--no-wait` sets this to false. */
  wait?: boolean;
  /** Print the plan (start/stop/route changes) and change nothing. */
  dryRun?: boolean;
}

/**
 * `devproxy use <profile>` (alias `switch-profile`): writes the worktree's live profile file
 * atomically. A new profile clears earlier one-off overrides; `--service` alone keeps the
 * profile and adds overrides. The daemon applies the file by itself; this waits to report it.
 */
export async function use(profileName: string | undefined, opts: UseOptions): Promise<void> {
  const { worktree, input } = await selectWorktree(opts);
  // What this command's decision is based on; another command changing it meanwhile wins.
  const seen = await readFile(profilePath(worktree.path), 'utf8').catch(() => null);
  const config = requireConfig(worktree.path, input);
  if (profileName === undefined && !opts.service?.length) {
    throw new DevproxyError('DEVPROXY_ERR_USAGE', 'name a profile or give --service <name>=local|remote', { hint: `profiles: ${[...config.profiles.keys()].join(', ')}` });
  }
  if (profileName !== undefined && !config.profiles.has(profileName)) {
    const suggestion = didYouMean(profileName, config.profiles.keys());
    throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_PROFILE', `unknown profile "${profileName}"`, {
      hint: `${suggestion ? `did you mean "${suggestion}"? ` : ''}profiles in ${configPath(worktree.path)}: ${[...config.profiles.keys()].join(', ')}`,
    });
  }
  const current = input.profile;
  const services = new Map<string, RouteMode>(profileName === undefined ? current?.services : []);
  for (const [service, mode] of parseOverrides(opts.service ?? [], config)) services.set(service, mode);
  // Only `profile` and `services` change: `name`, `writes` and every other key of the file stay.
  const next = { profile: profileName ?? current?.profile ?? config.defaultProfile, services };

  // Validate exactly what will be written, so `use` never leaves a file the daemon rejects.
  const check = validateProfile(editProfileText(seen, next), profilePath(worktree.path), config);
  if (check.errors[0]) throw new DevproxyError('DEVPROXY_ERR_PROFILE_INVALID', check.errors[0].message, { hint: check.errors[0].hint });
  const wanted = new Set(localServices(config, check.profile));
  if (opts.dryRun) {
    await printPlan(worktree.path, worktree.slug, localServices(config, current), [...wanted], opts.json === true);
    return;
  }
  const starting = [...wanted].filter((service) => !localServices(config, current).includes(service));
  const budget = checkMemoryBudget(config, starting, await availableMemoryBytes());
  if (budget.exceeds && !opts.json) {
    console.log(`warning: ${starting.join(', ')} declare ${formatMemory(budget.declaredBytes)} but ${formatMemory(budget.availableBytes)} is available on this machine`);
  }
  const written = await writeProfileUnlessChanged(worktree.path, next, seen);

  const applied = opts.wait === false ? undefined : await waitApplied(worktree.path, next.profile, wanted);
  // Honest exit code: a service this switch started that has already failed makes `use` exit 1.
  const failures = applied ? applied.services.filter((s) => starting.includes(s.name)).map(failureOf).filter((f) => f !== undefined) : [];
  if (opts.json) {
    console.log(JSON.stringify({ worktree: worktree.slug, profile: next.profile, file: written, local: [...wanted], applied: applied?.services ?? null, failures }, null, 2));
    assertServicesHealthy({ name: worktree.slug, path: worktree.path }, failures);
    return;
  }
  console.log(`${worktree.slug}: profile ${next.profile}${services.size ? ` (${[...services].map(([s, m]) => `${s}=${m}`).join(', ')})` : ''} → ${written}`);
  if (applied) {
    console.log(renderTable([['SERVICE', 'ROUTE', 'TARGET', 'URL'], ...applied.services.map((s) => [s.name, routeLabel(s), s.target ?? `(${s.problem?.message ?? 'unavailable'})`, s.httpsUrl ?? s.url])]));
  } else if (opts.wait !== false) {
    console.log('devproxy is not running: the profile applies when it starts (`devproxy proxy start`)');
  }
  for (const failure of failures) sayFailure((line) => console.log(line), failure);
  assertServicesHealthy({ name: worktree.slug, path: worktree.path }, failures);
}

/**
 * What `use` would do: local instances to start and stop (the running ones from the daemon,
 * else the current profile's), and each route that changes.
 */
async function printPlan(path: string, slug: string, before: string[], after: string[], json: boolean): Promise<void> {
  const report = await callDaemon<StatusReport>('/api/status?probe=0');
  const services = report?.worktrees.find((w) => w.path === path)?.services;
  const running = services ? services.filter((s) => s.runtime && ['starting', 'healthy', 'unhealthy'].includes(String(s.runtime.state))).map((s) => s.name) : before;
  const plan = planReconcile(after, running);
  const routes = [...new Set([...before, ...after])].filter((s) => before.includes(s) !== after.includes(s)).map((s) => ({ service: s, from: before.includes(s) ? 'local' : 'remote', to: after.includes(s) ? 'local' : 'remote' }));
  if (json) {
    console.log(JSON.stringify({ worktree: slug, dryRun: true, ...plan, routes }, null, 2));
    return;
  }
  console.log(`${slug}: dry run, nothing changed`);
  console.log(`  start: ${plan.start.join(', ') || '-'}\n  stop:  ${plan.stop.join(', ') || '-'}\n  keep:  ${plan.keep.join(', ') || '-'}`);
  for (const r of routes) console.log(`  route ${r.service}: ${r.from} → ${r.to}`);
}

/**
 * Writes the profile under a lock, unless another command rewrote it since this one read it:
 * then this one is the loser of a race, and says so instead of silently undoing the other.
 */
async function writeProfileUnlessChanged(worktree: string, next: Parameters<typeof writeProfile>[1], seen: string | null): Promise<string> {
  const path = profilePath(worktree);
  await mkdir(dirname(path), { recursive: true });
  const release = await acquireLock(`${path}.lock`);
  try {
    const now = await readFile(path, 'utf8').catch(() => null);
    if (now !== seen) {
      const current = /^profile:\s*(\S+)/m.exec(now ?? '')?.[1] ?? 'the default';
      throw new DevproxyError('DEVPROXY_ERR_PROFILE_CHANGED', `another command changed ${path} while this one ran (it is now ${current}); nothing was written`);
    }
    return await writeProfile(worktree, next);
  } finally {
    await release();
  }
}

function parseOverrides(values: string[], config: ProjectConfig): Array<[string, RouteMode]> {
  return values.map((value) => {
    const [service, mode] = value.split('=');
    if (!service || (mode !== 'local' && mode !== 'remote')) {
      throw new DevproxyError('DEVPROXY_ERR_USAGE', `--service takes <name>=local or <name>=remote, not "${value}"`);
    }
    if (!config.services.has(service)) {
      const suggestion = didYouMean(service, config.services.keys());
      throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_SERVICE', `unknown service "${service}"`, { hint: `${suggestion ? `did you mean "${suggestion}"? ` : ''}services: ${[...config.services.keys()].join(', ')}` });
    }
    return [service, mode];
  });
}

/** Polls the daemon until the worktree shows the new profile and local set; undefined without a daemon. */
async function waitApplied(path: string, profile: string, wanted: Set<string>): Promise<StatusReport['worktrees'][number] | undefined> {
  const deadline = Date.now() + APPLY_TIMEOUT_MS;
  let last: StatusReport['worktrees'][number] | undefined;
  do {
    const report = await callDaemon<StatusReport>('/api/status?probe=0');
    if (!report) return undefined;
    last = report.worktrees.find((w) => w.path === path);
    if (last?.profile === profile && last.services.every((s) => (s.desired === 'local') === wanted.has(s.name))) return last;
    await new Promise((r) => setTimeout(r, 20));
  } while (Date.now() < deadline);
  return last;
}
