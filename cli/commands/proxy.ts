import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, fstatSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { daemonSpawnEnv } from '../../daemon-env.js';
import { homePaths } from '../../home-paths.js';
import { makePrivateDir, octalMode, openPrivateLog } from '../../private-files.js';
import { isAlive, readDaemonInfo, type DaemonInfo } from '../../workspace/home.js';
import { defaultHostsPath } from '../../environment/hosts-file.js';
import { DevproxyError } from '../../errors.js';
import { localPortRangeFromEnv, localPortRangeWarning } from '../../runtime/ports.js';
import { callDaemon, home, listenPorts, parsePort } from '../context.js';

/** How long `proxy start` waits for a background daemon to publish daemon.json. */
const START_TIMEOUT_MS = 15_000;
/** How long `proxy stop` waits for the daemon to drain and exit before it is killed. */
const STOP_TIMEOUT_MS = 10_000;
/**
 * V8 flags of the background daemon. V8 grows the young generation to two semi-spaces of up to
 * 16 MiB while the daemon starts and under load, and keeps both resident when it is idle again.
 * At 2 MiB each the idle daemon measured ~5 MiB smaller than at 4 MiB (which itself saved ~10 MiB
 * against the default) with no CPU cost per request seen; 1 MiB saved ~1.5 MiB more but looked
 * ~8% costlier per request. See README "Performance" → "Memory". The heap is sized when the process
 * starts, so this cannot be set from inside the daemon.
 */
const DAEMON_NODE_FLAGS = ['--max-semi-space-size=2'];

export interface ProxyStartOptions {
  foreground?: boolean;
  port?: string;
  httpsPort?: string;
  /** commander's `--no-https` sets this to false. */
  https?: boolean;
  host?: string[];
  redirectHttps?: boolean;
  /** `--sync-hosts [file]`: true for the system hosts file. */
  syncHosts?: string | boolean;
  json?: boolean;
}

/** `devproxy proxy start`: runs the daemon in the background (or here with --foreground). */
export async function proxyStart(opts: ProxyStartOptions): Promise<void> {
  const dir = home();
  const running = await readDaemonInfo(dir);
  if (running) {
    throw new DevproxyError('DEVPROXY_ERR_DAEMON_ALREADY_RUNNING', `devproxy is already running (pid ${running.pid}) on http://127.0.0.1:${running.httpPort}${running.httpsPort ? ` and https://127.0.0.1:${running.httpsPort}` : ''}`);
  }
  const defaults = await listenPorts();
  const httpPort = opts.port !== undefined ? parsePort(opts.port, '--port') : defaults.httpPort;
  const httpsPort = opts.https === false ? null : opts.httpsPort !== undefined ? parsePort(opts.httpsPort, '--https-port') : defaults.httpsPort;
  const args = ['--port', String(httpPort), '--https-port', httpsPort === null ? 'none' : String(httpsPort), ...(opts.host ?? []).flatMap((h) => ['--host', h]), ...(opts.redirectHttps ? ['--redirect-https'] : []),
    ...(opts.syncHosts ? ['--sync-hosts', opts.syncHosts === true ? defaultHostsPath() : resolve(opts.syncHosts)] : []),
  ];

  if (opts.foreground) {
    const { runDaemon } = await import('../../daemon/main.js');
    await runDaemon(args);
    return;
  }
  const { token: _token, ...info } = await startBackgroundDaemon(args);
  const log = homePaths(dir).daemonLog;
  print(opts.json, info, `devproxy started (pid ${info.pid})\n  http:  http://127.0.0.1:${info.httpPort}\n${info.httpsPort ? `  https: https://127.0.0.1:${info.httpsPort}\n` : ''}  log:   ${log}`);
}

/** Spawns the daemon detached, its output appended to the daemon log; resolves once it serves. */
export async function startBackgroundDaemon(args: string[]): Promise<DaemonInfo> {
  const dir = home();
  const paths = homePaths(dir);
  const main = fileURLToPath(new URL('../../daemon/main.js', import.meta.url));
  // On a read-only file system mkdir -p reports ENOENT for a folder that exists: ask plainly first.
  const wider = await makePrivateDir(dir);
  if (wider !== undefined) console.error(`note: ${dir} was mode ${octalMode(wider)}, readable by other users; devproxy set it to 0700 (it holds the admin token, logs and resolved secrets)`);
  const portsOverlap = await localPortRangeWarning(localPortRangeFromEnv(process.env));
  if (portsOverlap !== undefined) console.error(`note: ${portsOverlap}`);
  await access(dir, constants.W_OK);
  await makePrivateDir(paths.logs);
  const log = openPrivateLog(paths.daemonLog);
  let child: ChildProcess;
  let logStart: number;
  try {
    logStart = fstatSync(log).size;
    child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, main, ...args, '--log-file', paths.daemonLog], { detached: true, stdio: ['ignore', log, log], env: daemonSpawnEnv(process.env) });
  } finally {
    closeSync(log);
  }
  child.unref();
  return waitForDaemon(dir, child.pid ?? -1, paths.daemonLog, logStart);
}

/** The running daemon, started in the background with the configured ports when there is none. */
export async function ensureDaemon(): Promise<{ info: DaemonInfo; started: boolean }> {
  const running = await readDaemonInfo(home());
  if (running) return { info: running, started: false };
  const { httpPort, httpsPort } = await listenPorts();
  return { info: await startBackgroundDaemon(['--port', String(httpPort), '--https-port', httpsPort === null ? 'none' : String(httpsPort)]), started: true };
}

async function waitForDaemon(dir: string, pid: number, logPath: string, logStart: number): Promise<DaemonInfo> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const info = await readDaemonInfo(dir);
    if (info?.pid === pid) return info;
    if (!isAlive(pid)) {
      // Lost a start race: another daemon took the lock and runs; its log is not this one's failure.
      const winner = await readDaemonInfo(dir);
      if (winner && winner.pid !== pid) {
        throw new DevproxyError('DEVPROXY_ERR_DAEMON_ALREADY_RUNNING', `another devproxy started at the same time and is running (pid ${winner.pid}) on http://127.0.0.1:${winner.httpPort}`);
      }
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const log = (await readFile(logPath, 'utf8').catch(() => '')).slice(logStart).trim().split('\n').slice(-8).join('\n');
  throw new DevproxyError('DEVPROXY_ERR_DAEMON_START_FAILED', `the daemon did not start${log ? `:\n${log}` : ''}`);
}

/**
 * `devproxy proxy stop`: asks the daemon to drain and exit; kills it if it does not. Local
 * processes and containers keep running (the next daemon adopts them, so dev servers are not
 * restarted by a proxy restart). With `--all` every worktree goes down first (`devproxy down
 * --all`): the daemon stops every instance, then whatever is left is swept after it exits.
 */
export async function proxyStop(opts: { json?: boolean; all?: boolean }): Promise<void> {
  const dir = home();
  const info = await readDaemonInfo(dir);
  if (opts.all) {
    const { markDown, stopInstances } = await import('./down.js');
    const { paths, stopped } = await markDown({ all: true });
    // After the daemon is gone: sweep what it did not track (left by an earlier daemon).
    if (info) await stopDaemon(info);
    if (info) await stopInstances(paths);
    const count = Object.values(stopped).flat().length;
    print(opts.json, { stopped: info !== undefined, pid: info?.pid ?? null, instances: stopped }, `${info ? `devproxy stopped (pid ${info.pid})` : 'devproxy was not running'}; ${count} local instance${count === 1 ? '' : 's'} stopped, every worktree is down until \`devproxy up --all\``);
    return;
  }
  if (!info) {
    print(opts.json, { stopped: false }, 'devproxy is not running');
    return;
  }
  await stopDaemon(info);
  print(opts.json, { stopped: true, pid: info.pid }, `devproxy stopped (pid ${info.pid}); local processes and containers keep running (the next start adopts them; \`proxy stop --all\` stops them too)`);
}

async function stopDaemon(info: DaemonInfo): Promise<void> {
  await callDaemon('/api/stop', { method: 'POST' }, info).catch(() => process.kill(info.pid, 'SIGTERM'));
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (isAlive(info.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (isAlive(info.pid)) process.kill(info.pid, 'SIGKILL');
}

/** `devproxy proxy status`: whether the daemon runs, where, and its log. */
export async function proxyStatus(opts: { json?: boolean }): Promise<void> {
  const dir = home();
  const info = await readDaemonInfo(dir);
  const log = homePaths(dir).daemonLog;
  if (!info) {
    print(opts.json, { running: false }, 'devproxy is not running (start it with `devproxy proxy start`)');
    process.exitCode = 3;
    return;
  }
  const { token: _token, ...visible } = info;
  const listen = info.listen?.length ? `  listening on: ${info.listen.join(', ')} (HTTP${info.httpsPort ? '/HTTPS' : ''}; the admin API on 127.0.0.1 only)\n` : '';
  print(opts.json, { running: true, ...visible, log }, `devproxy ${info.version} is running (pid ${info.pid}) since ${info.startedAt}\n  http:  http://127.0.0.1:${info.httpPort}\n${info.httpsPort ? `  https: https://127.0.0.1:${info.httpsPort}\n` : ''}${listen}  log:   ${log}`);
}

function print(json: boolean | undefined, value: unknown, text: string): void {
  console.log(json ? JSON.stringify(value, null, 2) : text);
}
