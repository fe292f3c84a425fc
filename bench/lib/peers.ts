/**
 * The other proxies and tools devproxy is measured against: found on PATH, installed only when
 * asked (`--with-peers`: Debian packages through apt-get, portless through npm into a cache
 * folder), and started on loopback with configs written to the run's scratch folder.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand, startProcess, waitForListening, waitForPort, onCleanup, sleep, type Managed } from './procs.js';

/** portless version the issue compares against. */
export const PORTLESS_VERSION = '0.15.6';

/** Where `--with-peers` installs portless; outside the repo so no tool of the repo scans it. */
export const PORTLESS_PREFIX = join(tmpdir(), `devproxy-bench-portless-${PORTLESS_VERSION}`);

/** Debian package that provides each binary. */
const DEBIAN_PACKAGES: Record<string, string> = {
  caddy: 'caddy',
  nginx: 'nginx-light',
  wrk: 'wrk',
  h2load: 'nghttp2-client',
};

/** Paths of the peers and tools that are available. */
export interface Peers {
  caddy?: string;
  nginx?: string;
  wrk?: string;
  h2load?: string;
  portless?: string;
  /** Versions as the tools report them. */
  versions: Record<string, string>;
  /** What was installed by this run, and what is missing with why. */
  notes: string[];
}

async function which(bin: string): Promise<string | undefined> {
  const result = await runCommand('sh', ['-c', `command -v ${bin}`], { timeoutMs: 5000 });
  const path = result.stdout.trim();
  return result.code === 0 && path ? path : undefined;
}

function portlessBin(): string | undefined {
  const bin = join(PORTLESS_PREFIX, 'node_modules', '.bin', 'portless');
  return existsSync(bin) ? bin : undefined;
}

async function version(cmd: string, args: string[], pattern: RegExp): Promise<string> {
  const result = await runCommand(cmd, args, { timeoutMs: 10_000 });
  return pattern.exec(`${result.stdout}\n${result.stderr}`)?.[1] ?? 'unknown';
}

/** Finds the peers; with `install`, first installs what is missing (Debian packages need root). */
export async function findPeers(install: boolean, log: (line: string) => void): Promise<Peers> {
  const notes: string[] = [];
  if (install) {
    const missing: string[] = [];
    for (const [bin, pkg] of Object.entries(DEBIAN_PACKAGES)) if (!(await which(bin))) missing.push(pkg);
    if (missing.length > 0) {
      if (process.getuid?.() !== 0) {
        notes.push(`not root: cannot apt-get install ${missing.join(' ')}`);
      } else {
        log(`installing ${missing.join(' ')} with apt-get…`);
        const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
        let result = await runCommand('apt-get', ['install', '-y', '-q', ...missing], { env, timeoutMs: 300_000 });
        if (result.code !== 0) {
          // A fresh machine has no package lists yet.
          await runCommand('apt-get', ['update', '-q'], { env, timeoutMs: 300_000 });
          result = await runCommand('apt-get', ['install', '-y', '-q', ...missing], { env, timeoutMs: 300_000 });
        }
        notes.push(result.code === 0 ? `installed ${missing.join(' ')} (apt-get)` : `apt-get install failed: ${result.stderr.trim().split('\n').pop() ?? ''}`);
      }
    }
    if (!portlessBin()) {
      log(`installing portless@${PORTLESS_VERSION} into ${PORTLESS_PREFIX}…`);
      mkdirSync(PORTLESS_PREFIX, { recursive: true });
      // portless declares node >= 24 but runs on 20; --no-save keeps the cache folder bare.
      const result = await runCommand('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', PORTLESS_PREFIX, `portless@${PORTLESS_VERSION}`], {
        timeoutMs: 300_000,
      });
      notes.push(result.code === 0 ? `installed portless@${PORTLESS_VERSION} (npm)` : `npm install portless failed: ${result.stderr.trim().split('\n').pop() ?? ''}`);
    }
  }
  const peers: Peers = { versions: {}, notes };
  const caddy = await which('caddy');
  const nginx = (await which('nginx')) ?? (existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : undefined);
  const wrk = await which('wrk');
  const h2load = await which('h2load');
  const portless = portlessBin() ?? (await which('portless'));
  if (caddy) {
    peers.caddy = caddy;
    peers.versions.caddy = await version(caddy, ['version'], /v?(\d+\.\d+\.\d+)/);
  }
  if (nginx) {
    peers.nginx = nginx;
    peers.versions.nginx = await version(nginx, ['-v'], /nginx\/(\S+)/);
  }
  if (wrk) {
    peers.wrk = wrk;
    peers.versions.wrk = await version(wrk, ['-v'], /wrk (\S+)/);
  }
  if (h2load) {
    peers.h2load = h2load;
    peers.versions.h2load = await version(h2load, ['--version'], /nghttp2\/(\S+)/);
  }
  if (portless) {
    peers.portless = portless;
    peers.versions.portless = await version(portless, ['--version'], /(\d+\.\d+\.\d+)/);
  }
  // wrk and h2load have Node fallbacks, which the run notes itself.
  for (const name of ['caddy', 'nginx', 'portless'] as const) {
    if (!peers[name]) notes.push(`${name} not installed: skipped (run \`npm run bench -- --with-peers\`)`);
  }
  return peers;
}

/** Temp folders nginx insists on, pointed into the scratch folder so it never touches /var. */
function nginxPrelude(dir: string, name: string): string {
  const tmp = join(dir, `${name}-tmp`);
  mkdirSync(tmp, { recursive: true });
  return `worker_processes 1;
daemon off;
master_process on;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
`;
}

async function startNginx(nginx: string, dir: string, name: string, conf: string, port: number): Promise<Managed> {
  const file = join(dir, `${name}.conf`);
  writeFileSync(file, conf);
  const managed = startProcess(name, nginx, ['-p', dir, '-e', join(dir, `${name}-error.log`), '-c', file], { logFile: join(dir, `${name}.log`) });
  // SIGQUIT is nginx's graceful stop; the default SIGTERM also works but drops connections.
  onCleanup(() => managed.stop('SIGQUIT'));
  await waitForListening(managed, port, `${name} on ${port}`);
  return managed;
}

/** nginx answering `ok` on every path: an upstream faster than any proxy in front of it. */
export function startNginxUpstream(nginx: string, dir: string, port: number): Promise<Managed> {
  const conf = `${nginxPrelude(dir, 'nginx-upstream')}
  server {
    listen 127.0.0.1:${port};
    default_type text/plain;
    location / { return 200 "ok"; }
  }
}
`;
  return startNginx(nginx, dir, 'nginx-upstream', conf, port);
}

/** nginx `proxy_pass` with a keep-alive upstream pool, one worker (as devproxy's one thread). */
export function startNginxProxy(nginx: string, dir: string, port: number, upstreamPort: number): Promise<Managed> {
  const conf = `${nginxPrelude(dir, 'nginx-proxy')}
  upstream backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
  return startNginx(nginx, dir, 'nginx-proxy', conf, port);
}

/** An HTTPS site of the Caddy peer: TLS with a given certificate (h2 by ALPN) in front of the same upstream. */
export interface CaddyTls {
  port: number;
  /** Site name: SNI and `:authority` the loads use. */
  host: string;
  certFile: string;
  keyFile: string;
}

/**
 * Caddy `reverse_proxy` with its defaults (keep-alive upstream pool), no admin, no auto-HTTPS;
 * with `tls`, the same proxy also serves an HTTPS site (h2) with the given certificate.
 */
export async function startCaddy(caddy: string, dir: string, port: number, upstreamPort: number, tls?: CaddyTls): Promise<Managed> {
  const file = join(dir, 'Caddyfile');
  const https =
    tls === undefined
      ? ''
      : `https://${tls.host}:${tls.port} {
	bind 127.0.0.1
	tls ${tls.certFile} ${tls.keyFile}
	reverse_proxy 127.0.0.1:${upstreamPort}
}
`;
  writeFileSync(
    file,
    `{
	admin off
	auto_https off
}
http://:${port} {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:${upstreamPort}
}
${https}`,
  );
  // Caddy writes its data and config under XDG folders: keep them in the scratch folder.
  const env = { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'caddy-data'), XDG_CONFIG_HOME: join(dir, 'caddy-config') };
  const managed = startProcess('caddy', caddy, ['run', '--config', file, '--adapter', 'caddyfile'], { env, logFile: join(dir, 'caddy.log') });
  await waitForListening(managed, port, `caddy on ${port}`);
  if (tls !== undefined) await waitForPort(tls.port, 15_000, `caddy HTTPS on ${tls.port}`);
  return managed;
}

/** A running portless proxy with one alias. */
export interface PortlessHandle {
  /** Host header that reaches the alias. */
  host: string;
  pid?: number;
}

/**
 * Starts portless's HTTP proxy in its own state folder (no hosts file, no trust store) and routes
 * `bench.localhost` to the upstream; registers its stop.
 */
export async function startPortless(portless: string, dir: string, port: number, upstreamPort: number): Promise<PortlessHandle> {
  const stateDir = join(dir, 'portless-state');
  mkdirSync(stateDir, { recursive: true });
  const env = { ...process.env, PORTLESS_STATE_DIR: stateDir, PORTLESS_SYNC_HOSTS: '0', HOME: dir };
  onCleanup(async () => {
    await runCommand(portless, ['proxy', 'stop', '-p', String(port)], { env, timeoutMs: 10_000 });
    await killPidFile(join(stateDir, 'proxy.pid'));
  });
  const start = await runCommand(portless, ['proxy', 'start', '-p', String(port), '--no-tls', '--skip-trust'], { env, timeoutMs: 30_000 });
  if (start.code !== 0) throw new Error(`portless proxy start failed: ${start.stderr || start.stdout}`);
  const alias = await runCommand(portless, ['alias', 'bench', String(upstreamPort)], { env, timeoutMs: 30_000 });
  if (alias.code !== 0) throw new Error(`portless alias failed: ${alias.stderr || alias.stdout}`);
  await waitForPort(port, 10_000, `portless on ${port}`);
  const handle: PortlessHandle = { host: `bench.localhost:${port}` };
  const pid = await readPid(join(stateDir, 'proxy.pid'));
  if (pid !== undefined) handle.pid = pid;
  return handle;
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Kills the process named by a pid file if it still runs (TERM, then KILL after 3 s). */
async function killPidFile(file: string): Promise<void> {
  const pid = await readPid(file);
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 30; i++) {
    await sleep(100);
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
