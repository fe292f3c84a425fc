/**
 * Drives the real devproxy the way a user does: the CLI in `bin/devproxy.js`, a private
 * `DEVPROXY_HOME`, the background daemon (whose pid daemon.json gives for /proc readings), and
 * probes with the `Host` header of a route.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homePaths } from '../../home-paths.js';
import { isAlive, type DaemonInfo } from '../../workspace/home.js';
import { httpGet, type Probe } from './http-get.js';
import { isShuttingDown, onCleanup, runCommand, sleep, startProcess, waitForPort, type CommandResult } from './procs.js';

/** A daemon started by the harness. */
export interface Daemon {
  home: string;
  info: DaemonInfo;
  /** `$DEVPROXY_HOME/logs/daemon.log`. */
  logFile: string;
  /** `devproxy proxy stop`, then SIGKILL if it is still there; idempotent. */
  stop(): Promise<void>;
}

/** How to find and run the CLI. */
export interface Cli {
  /** Repository root (holds `bin/devproxy.js`). */
  root: string;
}

/** Path of the CLI entry point. */
export function cliPath(cli: Cli): string {
  return join(cli.root, 'bin', 'devproxy.js');
}

/** True once the lead's CLI has been built. */
export function cliBuilt(cli: Cli): boolean {
  return existsSync(join(cli.root, 'dist', 'cli', 'index.js'));
}

/** Runs `devproxy <args>` with a private home. */
export function runCli(cli: Cli, home: string, args: string[], cwd?: string, timeoutMs = 30_000): Promise<CommandResult> {
  return runCommand(process.execPath, [cliPath(cli), ...args], { cwd: cwd ?? cli.root, env: { ...process.env, DEVPROXY_HOME: home }, timeoutMs });
}

function readDaemonInfo(home: string): DaemonInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(homePaths(home).daemon, 'utf8')) as DaemonInfo;
    return typeof info.pid === 'number' && typeof info.httpPort === 'number' ? info : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts the daemon as a user does, `devproxy proxy start` (background), so the process measured
 * is the real daemon and not a CLI hosting it. With `cpuProfDir` it runs instead as
 * `node --cpu-prof bin/devproxy.js proxy start --foreground` (Node refuses --cpu-prof in
 * NODE_OPTIONS, so a background daemon cannot inherit it). Its stop is registered for clean-up.
 */
export async function startDaemon(cli: Cli, opts: { home: string; httpPort: number; httpsPort: number | null; cpuProfDir?: string }): Promise<Daemon> {
  if (isShuttingDown()) throw new Error('not starting devproxy: shutting down');
  const https = opts.httpsPort === null ? ['--no-https'] : ['--https-port', String(opts.httpsPort)];
  const startArgs = ['proxy', 'start', '--port', String(opts.httpPort), ...https];
  const logFile = homePaths(opts.home).daemonLog;
  let info: DaemonInfo | undefined;
  if (opts.cpuProfDir) {
    mkdirSync(homePaths(opts.home).logs, { recursive: true });
    const managed = startProcess('devproxy', process.execPath, ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`, cliPath(cli), ...startArgs, '--foreground'], {
      cwd: cli.root,
      env: { ...process.env, DEVPROXY_HOME: opts.home },
      logFile,
    });
    const deadline = Date.now() + 20_000;
    while (!(info = readDaemonInfo(opts.home))) {
      if (managed.child.exitCode !== null) throw new Error(`devproxy exited (${managed.child.exitCode}): ${readFileSync(logFile, 'utf8').trim().split('\n').slice(0, 2).join(' ')}`);
      if (Date.now() > deadline) throw new Error(`devproxy wrote no daemon.json within 20 s; see ${logFile}`);
      await sleep(50);
    }
  } else {
    const started = await runCli(cli, opts.home, startArgs, undefined, 30_000);
    info = readDaemonInfo(opts.home);
    if (started.code !== 0 || !info) throw new Error(`devproxy proxy start failed (${started.code}): ${(started.stderr || started.stdout).trim().split('\n').slice(0, 3).join(' ')}`);
  }
  const daemonInfo = info;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (isAlive(daemonInfo.pid)) await runCli(cli, opts.home, ['proxy', 'stop'], undefined, 20_000);
      // `proxy stop` kills after its own grace; this only covers a CLI that failed to run.
      for (let i = 0; i < 50 && isAlive(daemonInfo.pid); i++) await sleep(100);
      if (isAlive(daemonInfo.pid)) process.kill(daemonInfo.pid, 'SIGKILL');
    })());
  onCleanup(stop);
  await waitForPort(daemonInfo.httpPort, 10_000, 'devproxy HTTP listener');
  return { home: opts.home, info: daemonInfo, logFile, stop };
}

/**
 * Starts the daemon with its HTTPS listener; when that fails (e.g. a build without it), starts
 * it again without HTTPS and says why in `notes`, so the HTTPS row reads n/a instead of the run
 * losing every devproxy figure.
 */
export async function startDaemonPreferHttps(cli: Cli, opts: { home: string; httpPort: number; httpsPort: number; cpuProfDir?: string }, notes: string[]): Promise<Daemon> {
  try {
    return await startDaemon(cli, opts);
  } catch (err) {
    notes.push(`devproxy did not start with HTTPS (${err instanceof Error ? err.message : String(err)}); ran with --no-https`);
    return startDaemon(cli, { ...opts, httpsPort: null });
  }
}

/** Polls `host` through the daemon until `accept` says yes; rejects after `timeoutMs`. */
export async function waitForRoute(port: number, host: string, accept: (p: Probe) => boolean, timeoutMs = 30_000): Promise<Probe> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    try {
      const probe = await httpGet(port, host, undefined, 2000);
      if (accept(probe)) return probe;
      last = `${probe.status} route=${probe.route ?? '-'} body=${probe.body.slice(0, 120)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`${host} not routed as expected within ${timeoutMs} ms (last: ${last})`);
    await sleep(100);
  }
}
