import type { StatusReport } from '../../daemon/status.js';
import { DevproxyError } from '../../errors.js';
import { nextProfile, planProfileChange, readProfileText, writeProfileUnlessChanged } from '../../profiles/profile-change.js';
import type { ProfileFile, ProjectConfig, RouteMode } from '../../profiles/schema.js';
import { localServices } from '../../router/profile-resolution.js';
import { availableMemoryBytes, checkMemoryBudget, formatMemory } from '../../runtime/memory.js';
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
  const seen = await readProfileText(worktree.path);
  const config = requireConfig(worktree.path, input);
  const current = input.profile;
  const { next, validated } = nextProfile(config, current, { ...(profileName !== undefined ? { profile: profileName } : {}), services: parseOverrides(opts.service ?? []) }, worktree.path, seen);
  const wanted = new Set(localServices(config, validated));
  if (opts.dryRun) {
    await printPlan(config, worktree.path, worktree.slug, current, validated, opts.json === true);
    return;
  }
  const starting = [...wanted].filter((service) => !localServices(config, current).includes(service));
  const budget = checkMemoryBudget(config, starting, await availableMemoryBytes());
  if (budget.exceeds && !opts.json) {
    console.log(`warning: ${starting.join(', ')} declare ${formatMemory(budget.declaredBytes)} but ${formatMemory(budget.availableBytes)} is available on this machine`);
  }
  const written = await writeProfileUnlessChanged(worktree.path, next, seen);
  const { services } = next;

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
async function printPlan(config: ProjectConfig, path: string, slug: string, current: ProfileFile | undefined, next: ProfileFile, json: boolean): Promise<void> {
  const report = await callDaemon<StatusReport>('/api/status?probe=0');
  const services = report?.worktrees.find((w) => w.path === path)?.services;
  const running = services?.filter((s) => s.runtime && ['starting', 'healthy', 'unhealthy'].includes(String(s.runtime.state))).map((s) => s.name);
  const { start, stop, keep, routes } = planProfileChange(config, current, next, running);
  if (json) {
    console.log(JSON.stringify({ worktree: slug, dryRun: true, start, stop, keep, routes }, null, 2));
    return;
  }
  console.log(`${slug}: dry run, nothing changed`);
  console.log(`  start: ${start.join(', ') || '-'}\n  stop:  ${stop.join(', ') || '-'}\n  keep:  ${keep.join(', ') || '-'}`);
  for (const r of routes) console.log(`  route ${r.service}: ${r.from} → ${r.to}`);
}

function parseOverrides(values: string[]): Array<[string, RouteMode]> {
  return values.map((value) => {
    const [service, mode] = value.split('=');
    if (!service || (mode !== 'local' && mode !== 'remote')) {
      throw new DevproxyError('DEVPROXY_ERR_USAGE', `--service takes <name>=local or <name>=remote, not "${value}"`);
    }
    return [service, mode];
  });
}

/**
 * Polls the daemon until the worktree shows the new profile and local set; undefined without a
 * daemon. Throws `DEVPROXY_ERR_NOT_APPLIED` with the daemon's own reason when it does not apply
 * the change in time: printing the old routes under exit 0 would tell the user it worked.
 */
async function waitApplied(path: string, profile: string, wanted: Set<string>): Promise<StatusReport['worktrees'][number] | undefined> {
  const deadline = Date.now() + APPLY_TIMEOUT_MS;
  let report: StatusReport | undefined;
  do {
    report = await callDaemon<StatusReport>('/api/status?probe=0');
    if (!report) return undefined;
    const worktree = report.worktrees.find((w) => w.path === path);
    if (worktree && isApplied(worktree, profile, wanted)) return worktree;
    await new Promise((r) => setTimeout(r, 20));
  } while (Date.now() < deadline);
  throw notApplied(report, path, profile);
}

/** True once the daemon's view of a worktree shows `profile` with exactly `wanted` local. */
export function isApplied(worktree: StatusReport['worktrees'][number], profile: string, wanted: Set<string>): boolean {
  return worktree.profile === profile && worktree.services.every((s) => (s.desired === 'local') === wanted.has(s.name));
}

/** Why the daemon did not apply a profile, from its own report: the worktree's diagnostics, or that it does not route it. */
export function notApplied(report: StatusReport, path: string, profile: string): DevproxyError {
  const worktree = report.worktrees.find((w) => w.path === path);
  if (!worktree) {
    const gone = report.diagnostics.find((d) => d.file === path);
    return new DevproxyError('DEVPROXY_ERR_NOT_APPLIED', `profile ${profile} is written, but the running daemon does not route the worktree at ${path}`, {
      hint: gone ? `${gone.message} — ${gone.hint}` : 'register the repository with `devproxy init` in its main checkout; the daemon then applies the file',
    });
  }
  const problem = worktree.diagnostics.find((d) => d.severity !== 'warning');
  return new DevproxyError('DEVPROXY_ERR_NOT_APPLIED', `profile ${profile} is written, but the daemon still routes ${worktree.name} with profile ${worktree.profile ?? 'the default'}${problem ? `: ${problem.file}:${problem.line} ${problem.message}` : ''}`, {
    hint: problem ? problem.hint : 'run `devproxy status` and read the daemon log for the reason',
  });
}
