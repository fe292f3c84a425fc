import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { configPath } from '../profiles/files.js';
import { formatDiagnostic, type Diagnostic, type ProjectConfig } from '../profiles/schema.js';
import { devproxyHome, homePaths } from '../home-paths.js';
import { readDaemonInfo, readRepos, type DaemonInfo } from '../workspace/home.js';
import type { StatusReport } from '../workspace/status.js';
import { loadRepoInputs } from '../workspace/worktree-loader.js';
import { DevproxyError, ERROR_HINTS, type ErrorCode } from '../errors.js';
import { VERSION } from '../version.js';
import { buildRoutingTable } from '../router/route-table.js';
import type { RoutingTable, WorktreeInput, WorktreeState } from '../router/types.js';
import { locateRepo, type RepoLocation } from '../workspace/git-worktrees.js';

/** Options every command that acts on a worktree accepts. */
export interface WorktreeSelection {
  /** `-C <dir>`: act as if started in that folder. */
  dir?: string;
  /** `--worktree <name>`: a worktree of the same repository by its hostname slug. */
  worktree?: string;
}

/** The devproxy home of this invocation. */
export function home(): string {
  return devproxyHome();
}

/** The repository around `-C`/cwd and the worktree chosen by `--worktree`, with a routing table of that repository. */
export async function selectWorktree(selection: WorktreeSelection): Promise<{ location: RepoLocation; table: RoutingTable; worktree: WorktreeState; input: WorktreeInput }> {
  const location = await locateRepo(resolve(selection.dir ?? process.cwd()));
  const inputs = await loadRepoInputs(location.main);
  const table = buildRoutingTable(inputs);
  const worktree = selection.worktree
    ? table.worktrees.find((w) => w.slug === selection.worktree)
    : table.worktrees.find((w) => w.path === location.worktree);
  if (!worktree) {
    const known = table.worktrees.map((w) => w.slug).join(', ');
    throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_WORKTREE', `no worktree ${selection.worktree ? `named "${selection.worktree}"` : `at ${location.worktree}`} in ${location.main}`, {
      hint: `known worktrees: ${known || 'none'}`,
    });
  }
  return { location, table, worktree, input: inputs.find((i) => i.path === worktree.path)! };
}

/** One admin API call: method, JSON body, and how long to wait for its answer (default {@link ADMIN_ANSWER_TIMEOUT_MS}). */
export interface AdminCall {
  method?: string;
  body?: unknown;
  timeoutMs?: number;
}

/** Calls the running daemon's admin API; undefined when no daemon runs. A failed call throws its error. */
export async function callDaemon<T>(path: string, init: AdminCall = {}, info?: DaemonInfo): Promise<T | undefined> {
  const response = await fetchDaemon(path, init, info);
  return response ? ((await response.json()) as T) : undefined;
}

/** The raw admin API response (for streamed logs); undefined when no daemon runs. */
export async function fetchDaemon(path: string, init: AdminCall = {}, info?: DaemonInfo): Promise<Response | undefined> {
  const daemon = info ?? (await readDaemonInfo(home()));
  if (!daemon) return undefined;
  let response: Response;
  // Aborts only while waiting for the answer's head: a streamed body (logs --follow) runs on.
  const answered = new AbortController();
  const timeoutMs = init.timeoutMs ?? ADMIN_ANSWER_TIMEOUT_MS;
  const timer = setTimeout(() => answered.abort(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
  try {
    response = await fetch(`http://127.0.0.1:${daemon.adminPort}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${daemon.token}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      signal: answered.signal,
    });
  } catch (error) {
    // daemon.json names a live process, so this is not "no daemon": say it does not answer.
    const cause = answered.signal.aborted ? (answered.signal.reason as Error) : (error as { cause?: { code?: string; message?: string } }).cause;
    throw new DevproxyError('DEVPROXY_ERR_DAEMON_UNRESPONSIVE', `the daemon (pid ${daemon.pid}) does not answer on its admin port ${daemon.adminPort} (${(cause as { code?: string })?.code ?? cause?.message ?? (error as Error).message})`, {
      hint: `read ${homePaths(home()).daemonLog}, then \`devproxy proxy stop\` and \`devproxy proxy start\``,
      cause: error,
    });
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) {
    const failure = (await response.json().catch(() => ({}))) as { error?: { code?: string; message?: string; hint?: string | null } };
    const code = (failure.error?.code && failure.error.code in ERROR_HINTS ? failure.error.code : 'DEVPROXY_ERR_INTERNAL') as ErrorCode;
    throw new DevproxyError(code, failure.error?.message ?? `the daemon answered ${response.status} to ${path}`, failure.error?.hint ? { hint: failure.error.hint } : {});
  }
  return response;
}

/**
 * How long the CLI waits for the daemon to start answering an admin call (status with health
 * probes, reload, stop): a daemon that accepts the connection and never answers is reported
 * after this instead of hanging the command. Calls that wait on purpose pass their own.
 */
export const ADMIN_ANSWER_TIMEOUT_MS = 15_000;

/** Status from the daemon, or computed from the files when it is not running. */
export async function currentStatus(probe: boolean): Promise<StatusReport> {
  const fromDaemon = await callDaemon<StatusReport>(`/api/status?probe=${probe ? 1 : 0}`);
  if (fromDaemon) return fromDaemon;
  const { buildStatus, probeLocalHealth } = await import('../workspace/status.js');
  const inputs = (await Promise.all((await readRepos(home())).map((repo) => loadRepoInputs(repo).catch(() => [])))).flat();
  const table = buildRoutingTable(inputs);
  const health = probe ? await probeLocalHealth(table) : new Map();
  return buildStatus(table, { running: false, pid: null, ...(await listenPorts()), version: VERSION }, health);
}

/** The ports URLs use: the running daemon's, else the configured ones. */
export async function listenPorts(): Promise<{ httpPort: number; httpsPort: number | null }> {
  const info = await readDaemonInfo(home());
  if (info) return { httpPort: info.httpPort, httpsPort: info.httpsPort };
  const { DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT } = await import('../workspace/home.js');
  return { httpPort: portFromEnv('DEVPROXY_PORT') ?? DEFAULT_HTTP_PORT, httpsPort: portFromEnv('DEVPROXY_HTTPS_PORT') ?? DEFAULT_HTTPS_PORT };
}

/** A port from an environment variable; a clear error when it is not one. */
export function portFromEnv(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  return parsePort(raw, name);
}

/** Parses a port option value (0 = any free port). */
export function parsePort(raw: string, what: string): number {
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new DevproxyError('DEVPROXY_ERR_USAGE', `${what} must be a port number from 0 to 65535, not "${raw}"`);
  }
  return port;
}

/** The config in force for a worktree, or the error saying why there is none: no file, or a broken one. */
export function requireConfig(worktreePath: string, loaded: { config?: ProjectConfig; diagnostics: Diagnostic[] }): ProjectConfig {
  if (loaded.config) return loaded.config;
  const path = configPath(worktreePath);
  const first = loaded.diagnostics[0];
  if (!existsSync(path) || !first) throw new DevproxyError('DEVPROXY_ERR_CONFIG_NOT_FOUND', `${path} does not exist`);
  throw new DevproxyError('DEVPROXY_ERR_CONFIG_INVALID', formatDiagnostic(first));
}
