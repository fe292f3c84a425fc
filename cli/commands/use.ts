import type { ServiceStatus, StatusReport } from '../../workspace/status.js';
import { DevproxyError } from '../../errors.js';
import { nextProfile, planProfileChange, readProfileText, writeProfileUnlessChanged } from '../../workspace/profile-change.js';
import type { ProfileFile, ProjectConfig, RouteMode } from '../../profiles/schema.js';
import { localServices } from '../../router/profile-resolution.js';
import { isRunningState } from '../../runtime/instance.js';
import { availableMemoryBytes, checkMemoryBudget, formatMemory } from '../../runtime/memory.js';
import { updateDownWorktrees } from '../../workspace/down-state.js';
import { callDaemon, home, requireConfig, selectWorktree, type WorktreeSelection } from '../context.js';
import { foldLines, renderTable, routeLabel } from '../format.js';
import { assertServicesHealthy, sayFailure, type ServiceFailure } from '../service-wait.js';
import { failureOfRoute, waitForRoutes } from '../wait-routes.js';

/**
 * Longest wait for the new routes. Each local service's own health timeout ends its wait
 * sooner (the daemon reports it unhealthy); this only bounds a daemon that stops answering.
 */
const ROUTES_TIMEOUT_MS = 600_000;

export interface UseOptions extends WorktreeSelection {
  /** `--service api=local` (repeatable). */
  service?: string[];
  json?: boolean;
  /** commander's `--no-wait` sets this to false: return at once and say what is still pending. */
  wait?: boolean;
  /** Print the plan (start/stop/route changes) and change nothing. */
  dryRun?: boolean;
}

/** The worktree a switch applied to, and what only the terminal output shows of the daemon's view. */
export interface UseTarget {
  name: string;
  path: string;
  /** False when no daemon runs: the file applies when one starts. */
  daemon: boolean;
  /** The worktree's file problems as the daemon reports them, one line each. */
  diagnostics: string[];
}

/** What a dry run would do: local instances to start, stop and keep, and each route that changes. */
export interface UsePlan {
  worktree: string;
  dryRun: true;
  start: string[];
  stop: string[];
  keep: string[];
  routes: Array<{ service: string; from: 'local' | 'remote'; to: 'local' | 'remote' }>;
}

/** What `use` did: the profile written and, when the daemon runs, the routes it reports. */
export interface UseResult {
  worktree: string;
  profile: string;
  /** Per-service overrides kept in the file. */
  overrides: Record<string, RouteMode>;
  file: string;
  local: string[];
  /** The worktree's services as the daemon reports them after the switch; null without a daemon or with --no-wait. */
  applied: ServiceStatus[] | null;
  /** Services whose route this switch changes and that have not reached it (only with --no-wait). */
  pending: string[];
  /** Local services that failed or did not get healthy in time (then `use` exits 1). */
  failures: ServiceFailure[];
  /** Things worth telling the user (memory budget). */
  warnings: string[];
}

/**
 * `devproxy use <profile>` (alias `switch-profile`): writes the worktree's live profile file
 * atomically. A new profile clears earlier one-off overrides; `--service` alone keeps the
 * profile and adds overrides. The daemon applies the file by itself; this waits until every
 * route reached its new target (local instances healthy, remote at once) and prints the routes
 * as they are then, so the first request after it returns reaches the new target. A local
 * service that fails or never gets healthy makes it exit 1 (DEVPROXY_ERR_SERVICES_FAILED).
 */
export async function use(profileName: string | undefined, opts: UseOptions): Promise<void> {
  const say = (line: string) => console.log(line);
  const result = await switchProfile(profileName, opts, opts.json ? undefined : say);
  if (opts.json) {
    console.log(JSON.stringify(result, null, 2));
    if (!('dryRun' in result)) assertServicesHealthy(result.target, result.failures);
    return;
  }
  if ('dryRun' in result) {
    say(`${result.worktree}: dry run, nothing changed`);
    say(`  start: ${result.start.join(', ') || '-'}\n  stop:  ${result.stop.join(', ') || '-'}\n  keep:  ${result.keep.join(', ') || '-'}`);
    for (const r of result.routes) say(`  route ${r.service}: ${r.from} → ${r.to}`);
    return;
  }
  if (!result.target.daemon) {
    say('devproxy is not running: the profile applies when it starts (`devproxy proxy start`)');
  } else if (result.applied) {
    say(renderTable([['SERVICE', 'ROUTE', 'TARGET', 'URL'], ...result.applied.map((s) => [s.name, routeLabel(s), s.target ?? `(${foldLines(s.problem?.message ?? 'unavailable')})`, s.httpsUrl ?? s.url])]));
    if (result.pending.length > 0) say(`still pending: ${result.pending.join(', ')}${opts.wait === false ? ' (not waiting: `devproxy status` shows when they are done)' : ''}`);
    for (const line of result.target.diagnostics) say(line);
  }
  assertServicesHealthy(result.target, result.failures);
}

/**
 * The work of `use`, shared by the CLI and the MCP server: validates the switch, then either
 * returns the plan (`dryRun`, nothing written) or writes the profile, waits for the routes
 * (unless `wait: false`) and reports them; `say` gets the progress lines as they happen, failures
 * included. `target` (not printed) names the worktree for `assertServicesHealthy` and carries what
 * only the terminal shows. Throws when the daemon runs but did not apply the file.
 */
export async function switchProfile(profileName: string | undefined, opts: UseOptions, say: (line: string) => void = () => {}): Promise<UsePlan | (UseResult & { readonly target: UseTarget })> {
  const { worktree, input } = await selectWorktree(opts);
  // What this command's decision is based on; another command changing it meanwhile wins.
  const seen = await readProfileText(worktree.path);
  const config = requireConfig(worktree.path, input);
  const current = input.profile;
  const { next, validated } = nextProfile(config, current, { ...(profileName !== undefined ? { profile: profileName } : {}), services: parseOverrides(opts.service ?? []) }, worktree.path, seen);
  const wanted = new Set(localServices(config, validated));
  if (opts.dryRun) return plan(config, worktree.path, worktree.slug, current, validated);
  const before = new Set(localServices(config, current));
  const starting = [...wanted].filter((service) => !before.has(service));
  // Progress and "pending" are about the routes this switch changes.
  const changing = new Set([...config.services.keys()].filter((service) => before.has(service) !== wanted.has(service)));
  const budget = checkMemoryBudget(config, starting, await availableMemoryBytes());
  const warnings = budget.exceeds ? [`${starting.join(', ')} declare ${formatMemory(budget.declaredBytes)} but ${formatMemory(budget.availableBytes)} is available on this machine`] : [];
  for (const warning of warnings) say(`warning: ${warning}`);
  // `use` brings a worktree that `devproxy down` stopped back up, with the new profile.
  await updateDownWorktrees(home(), (down) => down.delete(worktree.path));
  const written = await writeProfileUnlessChanged(worktree.path, next, seen);

  const overrides = Object.fromEntries(next.services);
  say(`${worktree.slug}: profile ${next.profile}${next.services.size ? ` (${Object.entries(overrides).map(([service, mode]) => `${service}=${mode}`).join(', ')})` : ''} → ${written}`);
  const began = Date.now();
  const outcome = await waitForRoutes(worktree.path, { profile: next.profile, local: wanted }, {
    timeoutMs: ROUTES_TIMEOUT_MS,
    wait: opts.wait !== false,
    onProgress: (service, progress) => {
      if (opts.wait === false || progress === 'pending' || (!changing.has(service.name) && progress !== 'failed')) return;
      const elapsed = `${((Date.now() - began) / 1000).toFixed(1)} s`;
      if (progress === 'failed') sayFailure(say, failureOfRoute(service), elapsed);
      else say(`  ${service.name.padEnd(12)} ${progress === 'starting' ? 'starting…' : `${wanted.has(service.name) ? 'local' : 'remote'} (${elapsed})`}`);
    },
  });
  const pending = outcome.pending.filter((service) => changing.has(service));
  const failures = outcome.failed.map(failureOfRoute);
  if (failures.length === 0 && opts.wait !== false && outcome.daemon) {
    if (!outcome.worktree || !isApplied(outcome.worktree, next.profile, wanted)) throw notApplied(outcome.report!, worktree.path, next.profile);
    if (pending.length > 0) throw new DevproxyError('DEVPROXY_ERR_SERVICES_FAILED', `${pending.join(', ')} did not reach ${pending.length === 1 ? 'its' : 'their'} new route`, { hint: '`devproxy status` shows the route and any file problem that holds it' });
  }
  const result = { worktree: worktree.slug, profile: next.profile, overrides, file: written, local: [...wanted], applied: outcome.worktree?.services ?? null, pending, failures, warnings };
  const target = { name: worktree.slug, path: worktree.path, daemon: outcome.daemon, diagnostics: outcome.worktree?.diagnostics.map((d) => `${d.severity === 'warning' ? 'warning' : 'error'}: ${foldLines(d.text)}`) ?? [] };
  // Not enumerable: the JSON output and the MCP result stay the documented shape.
  return Object.defineProperty(result, 'target', { value: target, enumerable: false }) as UseResult & { readonly target: UseTarget };
}


/**
 * What `use` would do: local instances to start and stop (the running ones from the daemon,
 * else the current profile's), and each route that changes.
 */
async function plan(config: ProjectConfig, path: string, slug: string, current: ProfileFile | undefined, next: ProfileFile): Promise<UsePlan> {
  const report = await callDaemon<StatusReport>('/api/status?probe=0');
  const services = report?.worktrees.find((w) => w.path === path)?.services;
  const running = services?.filter((s) => s.runtime && isRunningState(String(s.runtime.state))).map((s) => s.name);
  const { start, stop, keep, routes } = planProfileChange(config, current, next, running);
  return { worktree: slug, dryRun: true, start, stop, keep, routes };
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
