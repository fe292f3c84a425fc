/**
 * A real devproxy daemon for reliability tests: a temp $DEVPROXY_HOME, a real git repository
 * registered with `devproxy init`, and the daemon started with the compiled CLI
 * (`devproxy proxy start`) as its own process, so it can be killed, counted in /proc and
 * restarted like a user's.
 */
import { readFile, readdir, readlink, rm, mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, type DaemonInfo } from '../../workspace/home.js';
import type { StatusReport } from '../../workspace/status.js';
import { expect } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { fixedPort } from '../helpers/fixed-ports.js';
import { createTempRepo, type TempRepo } from '../helpers/git-repo.js';

/** A daemon under test and the files around it. */
export interface DaemonUnderTest {
  home: string;
  repo: TempRepo;
  env: NodeJS.ProcessEnv;
  httpPort: number;
  cli(args: string[], cwd?: string): Promise<CliResult>;
  /** daemon.json as the daemon published it (undefined when absent or unreadable). */
  info(): Promise<DaemonInfo | undefined>;
  /** `GET /api/status?probe=0` with the token. */
  status(): Promise<StatusReport>;
  /** One GET through the proxy with the given Host; resolves status and body. */
  get(host: string, path?: string, agent?: http.Agent): Promise<{ status: number; body: string }>;
  cleanup(): Promise<void>;
}

/** Registers the repository and starts the daemon in the background; fails the test with the CLI's output when either fails. */
export async function initAndStart(d: DaemonUnderTest): Promise<void> {
  expect((await d.cli(['init'])).code).toBe(0);
  const started = await d.cli(['proxy', 'start']);
  expect(started.code, started.stderr + started.stdout).toBe(0);
}

/** Creates the repository and home; the daemon is not started (call `initAndStart`, or `cli(['proxy', 'start'])`). */
export async function prepareDaemon(config: string, extraFiles: Record<string, string> = {}): Promise<DaemonUnderTest> {
  const home = await mkdtemp(join(tmpdir(), 'devproxy-rel-home-'));
  const repo = await createTempRepo({ 'devproxy.yaml': config, ...extraFiles });
  const httpPort = await fixedPort();
  const env: NodeJS.ProcessEnv = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: String(httpPort), DEVPROXY_HTTPS_PORT: '0' };
  delete env.NODE_OPTIONS;
  const cli = (args: string[], cwd = repo.main) => runCli(args, { cwd, env });
  const info = async () => {
    try {
      return JSON.parse(await readFile(join(home, 'daemon.json'), 'utf8')) as DaemonInfo;
    } catch {
      return undefined;
    }
  };
  const self: DaemonUnderTest = {
    home,
    repo,
    env,
    httpPort,
    cli,
    info,
    async status() {
      const published = await info();
      if (!published) throw new Error('no daemon.json');
      const response = await fetch(`http://127.0.0.1:${published.adminPort}/api/status?probe=0`, { headers: { authorization: `Bearer ${published.token}` } });
      if (!response.ok) throw new Error(`admin API answered ${response.status}`);
      return (await response.json()) as StatusReport;
    },
    get(host, path = '/', agent) {
      return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: httpPort, path, headers: { host, accept: 'application/json' }, agent: agent ?? false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
    },
    async cleanup() {
      const published = await info();
      await cli(['proxy', 'stop', '--all']);
      if (published && isAlive(published.pid)) process.kill(published.pid, 'SIGKILL');
      await repo.cleanup();
      await rm(home, { recursive: true, force: true });
    },
  };
  return self;
}

/** Open file descriptors of a process (Linux /proc). */
export async function openFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** Socket inodes a process holds (Linux /proc). */
export async function socketInodes(pid: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const match = /^socket:\[(\d+)\]$/.exec(target);
    if (match) inodes.add(match[1]!);
  }
  return inodes;
}

/** Resident set size of a process in bytes (Linux /proc). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 'NaN');
  return kb * 1024;
}
