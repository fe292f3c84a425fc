import { readFileSync } from 'node:fs';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { writeFileAtomic } from '../atomic-write.js';
import { DevproxyError } from '../errors.js';
import { homePaths } from '../home-paths.js';
import { makePrivateDir, PRIVATE_FILE_MODE } from '../private-files.js';
import { readJsonState } from '../runtime/json-state.js';

/** Default plain HTTP port of the proxy (`--port`, `DEVPROXY_PORT`). */
export const DEFAULT_HTTP_PORT = 7080;
/** Default HTTPS port of the proxy (`--https-port`, `DEVPROXY_HTTPS_PORT`). */
export const DEFAULT_HTTPS_PORT = 7443;
/** How long a command waits for another one's lock on the registry before giving up. */
const LOCK_WAIT_MS = 5_000;
/** A lock older than this is left over by a killed command and is taken over. */
const STALE_LOCK_MS = 30_000;

/** What a running daemon publishes in daemon.json for the CLI. */
export interface DaemonInfo {
  pid: number;
  httpPort: number;
  httpsPort: number | null;
  adminPort: number;
  /** Bearer token for the admin API; the file is mode 0600. */
  token: string;
  startedAt: string;
  version: string;
  /** Every address the HTTP/HTTPS listeners are bound to (loopback, `--host`, the Docker bridge gateway). */
  listen?: string[];
}

/** The admin API's address and token, reused by the next daemon. */
export interface AdminIdentity {
  port: number;
  token: string;
}

/** The last daemon's admin port and token, when a valid admin.json exists. */
export async function readAdminIdentity(home: string): Promise<AdminIdentity | undefined> {
  // None yet, or damaged: a new one is made.
  const parsed = await readJsonState<Partial<AdminIdentity>>(homePaths(home).admin, {});
  if (Number.isInteger(parsed.port) && typeof parsed.token === 'string' && /^[0-9a-f]{48}$/.test(parsed.token)) return parsed as AdminIdentity;
  return undefined;
}

/** Keeps the admin port and token for the next daemon (mode 0600: the token opens the admin API). */
export async function writeAdminIdentity(home: string, identity: AdminIdentity): Promise<void> {
  await writeFileAtomic(homePaths(home).admin, JSON.stringify(identity) + '\n', { mode: PRIVATE_FILE_MODE });
}

/** The daemon's published info, or undefined when no daemon.json exists or its pid is gone. */
export async function readDaemonInfo(home: string): Promise<DaemonInfo | undefined> {
  const info = await readJsonState<DaemonInfo | undefined>(homePaths(home).daemon, undefined);
  return info !== undefined && isAlive(info.pid) ? info : undefined;
}

export async function writeDaemonInfo(home: string, info: DaemonInfo): Promise<void> {
  await makePrivateDir(home);
  await writeFileAtomic(homePaths(home).daemon, JSON.stringify(info, null, 2) + '\n', { mode: PRIVATE_FILE_MODE });
}

/**
 * True while a process with that pid runs (signal 0 probes without touching it). A process that
 * exited but is not reaped yet (a zombie) does not run: the daemon's parent is init once `proxy
 * start` has exited, and an init that reaps late (seconds in some sandboxes) or never (a container
 * without one) kept `proxy stop` waiting on a daemon that had already exited.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !exitedUnreaped(pid);
}

/** Linux: the process state in /proc/<pid>/stat is zombie or dead. Elsewhere (no /proc) false. */
function exitedUnreaped(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch (error) {
    // Unreadable (no /proc, another pid namespace, hidepid) or reaped since the probe: not known
    // to have exited, and taking a live daemon for dead would start a second one.
    return false;
  }
  // The state follows the command name, which is in parentheses and may hold any character.
  const state = stat[stat.lastIndexOf(')') + 2];
  return state === 'Z' || state === 'X';
}

/**
 * Registered repositories (main checkout paths), in registration order; none when the file does
 * not exist. Throws `DEVPROXY_ERR_CONFIG_INVALID` naming the file when it cannot be read or
 * parsed: treating a damaged registry as empty would unroute every repository (daemon) or
 * overwrite the others with one (`init`).
 */
export async function readRepos(home: string): Promise<string[]> {
  const path = homePaths(home).repos;
  let parsed: { repos?: unknown };
  try {
    parsed = JSON.parse(await readFile(path, 'utf8')) as { repos?: unknown };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    const reason = error instanceof SyntaxError ? 'is not valid JSON' : `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`;
    throw new DevproxyError('DEVPROXY_ERR_CONFIG_INVALID', `the repository registry ${path} ${reason}`, {
      hint: `restore it as {"repos": ["/path/to/repo"]}, or delete it and run \`devproxy init\` in each repository`,
      cause: error,
    });
  }
  if (parsed === null || typeof parsed !== 'object' || !Array.isArray(parsed.repos)) {
    throw new DevproxyError('DEVPROXY_ERR_CONFIG_INVALID', `the repository registry ${path} has no "repos" list`, {
      hint: `restore it as {"repos": ["/path/to/repo"]}, or delete it and run \`devproxy init\` in each repository`,
    });
  }
  return parsed.repos.filter((r): r is string => typeof r === 'string');
}

/**
 * Changes the registry under an exclusive lock, so two commands registering at once both land.
 * The daemon watches repos.json and picks the change up by itself.
 */
export async function updateRepos(home: string, change: (repos: string[]) => string[]): Promise<string[]> {
  const paths = homePaths(home);
  await makePrivateDir(home);
  const release = await acquireLock(paths.reposLock);
  try {
    const next = change(await readRepos(home));
    await writeFileAtomic(paths.repos, JSON.stringify({ repos: next }, null, 2) + '\n', { mode: PRIVATE_FILE_MODE });
    return next;
  } finally {
    await release();
  }
}

/** Creates `path` exclusively, waiting for (or taking over a stale) holder; returns the release. */
export async function acquireLock(path: string, waitMs = LOCK_WAIT_MS): Promise<() => Promise<void>> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const handle = await open(path, 'wx', PRIVATE_FILE_MODE);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > STALE_LOCK_MS) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new DevproxyError('DEVPROXY_ERR_LOCKED', `another devproxy command holds ${path}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
