/**
 * Drives the real devproxy the way a user does: the CLI in `bin/devproxy.js`, a private
 * `DEVPROXY_HOME`, a foreground daemon the harness owns (so it can read its /proc entries and
 * stop it), and probes with the `Host` header of a route.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpGet, type Probe } from './http-get.js';
import { runCommand, sleep, startProcess, waitForPort, type CommandResult, type Managed } from './procs.js';

/** `$DEVPROXY_HOME/daemon.json` as the daemon writes it. */
export interface DaemonInfo {
  pid: number;
  httpPort: number;
  httpsPort: number | null;
  adminPort: number;
  token: string;
}

/** A daemon started by the harness. */
export interface Daemon {
  home: string;
  info: DaemonInfo;
  managed: Managed;
  /** `devproxy proxy stop`, then signals if it is still there. */
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
    const info = JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8')) as DaemonInfo;
    return typeof info.pid === 'number' && typeof info.httpPort === 'number' ? info : undefined;
  } catch {
    return undefined;
  }
}

/** Starts `devproxy proxy start --foreground` with `home` and waits for `daemon.json` and the port. */
export async function startDaemon(
  cli: Cli,
  opts: { home: string; httpPort: number; httpsPort: number | null; logFile: string; cpuProfDir?: string },
): Promise<Daemon> {
  const nodeArgs = opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`] : [];
  const https = opts.httpsPort === null ? ['--no-https'] : ['--https-port', String(opts.httpsPort)];
  const args = [...nodeArgs, cliPath(cli), 'proxy', 'start', '--foreground', '--port', String(opts.httpPort), ...https];
  const env = { ...process.env, DEVPROXY_HOME: opts.home };
  const managed = startProcess('devproxy', process.execPath, args, { cwd: cli.root, env, logFile: opts.logFile });
  const deadline = Date.now() + 20_000;
  let info: DaemonInfo | undefined;
  while (!(info = readDaemonInfo(opts.home)) || info.httpPort !== opts.httpPort) {
    if (managed.child.exitCode !== null) throw new Error(`devproxy daemon exited (${managed.child.exitCode}); see ${opts.logFile}`);
    if (Date.now() > deadline) throw new Error(`devproxy daemon wrote no daemon.json within 20 s; see ${opts.logFile}`);
    await sleep(50);
  }
  await waitForPort(info.httpPort, 10_000, 'devproxy HTTP listener');
  const daemonInfo = info;
  return {
    home: opts.home,
    info: daemonInfo,
    managed,
    async stop() {
      if (managed.child.exitCode === null) await runCli(cli, opts.home, ['proxy', 'stop'], undefined, 15_000);
      // A clean exit also lets --cpu-prof write its profile, so wait before signalling.
      const gone = await Promise.race([managed.exited.then(() => true), sleep(5000).then(() => false)]);
      if (!gone) await managed.stop();
    },
  };
}

/**
 * Starts the daemon with its HTTPS listener; when that fails (e.g. a build without it), starts
 * it again without HTTPS and says why in `notes`, so the HTTPS row reads n/a instead of the run
 * losing every devproxy figure.
 */
export async function startDaemonPreferHttps(
  cli: Cli,
  opts: { home: string; httpPort: number; httpsPort: number; logFile: string; cpuProfDir?: string },
  notes: string[],
): Promise<Daemon> {
  try {
    return await startDaemon(cli, opts);
  } catch (err) {
    const tail = existsSync(opts.logFile) ? readFileSync(opts.logFile, 'utf8').trim().split('\n').slice(0, 2).join(' ') : '';
    notes.push(`devproxy did not start with HTTPS (${err instanceof Error ? err.message : String(err)}${tail ? `: ${tail}` : ''}); ran with --no-https`);
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
