import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor } from '../helpers/git-repo.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { initAndStart, prepareDaemon, type DaemonUnderTest } from './daemon-harness.js';
import { fixedPort } from '../helpers/fixed-ports.js';
import { isAlive } from '../../workspace/home.js';
import { tally } from './tally.js';

/**
 * The daemon and CLI when the disk or the daemon misbehave (issue #11 items 13 and 14): a full
 * $DEVPROXY_HOME degrades logging and never kills the daemon, the log is capped, and every
 * failure a user can meet says what happened with its own code and exit status — never
 * "devproxy crashed", a silent exit, or exit 0 with stale routes.
 */
const disk = tally('disk-full-and-log-cap');
const clear = tally('clear-errors');

/** Mounting a small tmpfs (a real full or read-only file system) needs root; elsewhere those cases are skipped. */
const IS_ROOT = process.getuid?.() === 0;
const ROOT_REASON = 'needs root to mount a small tmpfs as a full or read-only $DEVPROXY_HOME';
const LOG_MAX_BYTES = 16 * 1024;
/** Each request to a refused remote logs one warning line; enough of them to rotate the log several times. */
const LOGGED_REQUESTS = 400;

let upstream: Upstream | undefined;

/** A read-only remote: every DELETE is refused by devproxy itself and logs one line. */
async function readOnlyConfig(): Promise<string> {
  upstream ??= await startHttpUpstream((_req, res) => res.end('REMOTE'));
  return `name: contoso
services:
  api:
    remote: http://api-dev.localhost:${upstream.port}
    writes: read-only
profiles:
  standard: []
default: standard
`;
}

afterAll(async () => upstream?.close());

/** One DELETE through the proxy: refused under \`writes: read-only\`, and logged. */
function del(d: DaemonUnderTest, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: d.httpPort, path, method: 'DELETE', headers: { host: 'api.contoso.localhost' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function startDaemon(d: DaemonUnderTest): Promise<void> {
  cleanups.push(() => d.cleanup());
  await initAndStart(d);
  await waitFor(async () => ((await d.get('api.contoso.localhost')).body === 'REMOTE' ? true : undefined), 10_000, 'api routed to its remote');
}

async function mountTmpfs(dir: string, options: string): Promise<void> {
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  cleanups.push(async () => execFileSync('umount', ['-l', dir]));
}

/** 400 sequential requests take ~5 s on a quiet machine and over 30 s on two loaded cores. */
const REQUEST_LOOP_TIMEOUT_MS = 120_000;

describe('the daemon log', () => {
  it(`is rotated at DEVPROXY_LOG_MAX_BYTES: ${LOGGED_REQUESTS} logged requests leave at most twice the cap`, async () => {
    const d = await prepareDaemon(await readOnlyConfig());
    d.env.DEVPROXY_LOG_MAX_BYTES = String(LOG_MAX_BYTES);
    await startDaemon(d);
    for (let i = 0; i < LOGGED_REQUESTS; i++) await del(d, `/request-${i}`);
    const log = join(d.home, 'logs', 'daemon.log');
    await disk.check(async () => expect((await stat(log)).size).toBeLessThanOrEqual(LOG_MAX_BYTES));
    await disk.check(async () => expect((await stat(`${log}.1`)).size).toBeLessThanOrEqual(LOG_MAX_BYTES));
    await disk.check(async () => expect(await readFile(log, 'utf8')).toMatch(/api\.contoso\.localhost: DELETE refused/));
  }, REQUEST_LOOP_TIMEOUT_MS);

  it.skipIf(!IS_ROOT)(`a full $DEVPROXY_HOME degrades logging; the daemon keeps answering (${ROOT_REASON})`, async () => {
    const d = await prepareDaemon(await readOnlyConfig());
    await mountTmpfs(d.home, 'size=2m,mode=0700');
    await startDaemon(d);
    const pid = (await d.info())!.pid;
    // Fill what is left of the file system.
    const filler = join(d.home, 'filler');
    await writeFile(filler, Buffer.alloc(4 * 1024 * 1024)).catch((error: NodeJS.ErrnoException) => expect(error.code).toBe('ENOSPC'));
    const statuses = new Set<number>();
    for (let i = 0; i < LOGGED_REQUESTS; i++) statuses.add(await del(d, `/full-${i}`));
    await disk.check(() => expect(statuses).toEqual(new Set([403])));
    await disk.check(() => expect(isAlive(pid)).toBe(true));
    await disk.check(async () => expect((await d.status()).daemon.running).toBe(true));
    await disk.check(async () => expect((await d.info())?.pid).toBe(pid));
    // Space again: the next line says how many were lost.
    await rm(filler);
    await disk.check(() =>
      waitFor(
        async () => {
          // Writes are retried a while after a failure: keep logging until one lands.
          await del(d, '/after');
          return /\d+ log lines were dropped: the disk was full/.test(await readFile(join(d.home, 'logs', 'daemon.log'), 'utf8')) ? true : undefined;
        },
        10_000,
        'the loss reported',
      ),
    );
  }, REQUEST_LOOP_TIMEOUT_MS);
});

describe('errors a user can act on', () => {
  it.skipIf(!IS_ROOT)(`a read-only $DEVPROXY_HOME: proxy start, init and trust --print exit 1 naming the folder (${ROOT_REASON})`, async () => {
    const repo = await createTempRepo({ 'devproxy.yaml': await readOnlyConfig() });
    cleanups.push(() => repo.cleanup());
    const home = await mkdtemp(join(tmpdir(), 'devproxy-rel-rohome-'));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    await mountTmpfs(home, 'ro,size=1m');
    const env: NodeJS.ProcessEnv = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: String(await fixedPort()), DEVPROXY_HTTPS_PORT: '0' };
    delete env.NODE_OPTIONS;
    for (const args of [['proxy', 'start'], ['init'], ['trust', '--print']]) {
      const result = await runCli(args, { cwd: repo.main, env });
      await clear.check(() => {
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(1);
        expect(result.stderr).toMatch(new RegExp(`cannot write ${home}.*read-only file system \\(EROFS\\)`));
        expect(result.stderr).toContain('set DEVPROXY_HOME to a writable folder');
        expect(result.stderr).not.toMatch(/crashed|    at /);
      });
    }
  });

  it('a daemon that accepts connections and never answers: status exits 1 saying so, not silently', async () => {
    const accepted = new Set<Socket>();
    const silent: Server = createServer((socket) => accepted.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });
    const home = await mkdtemp(join(tmpdir(), 'devproxy-rel-silent-'));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    // A live pid (this test's) and the silent port: what a wedged daemon looks like to the CLI.
    const adminPort = (silent.address() as { port: number }).port;
    await writeFile(join(home, 'daemon.json'), JSON.stringify({ pid: process.pid, httpPort: 1, httpsPort: null, adminPort, token: 't', startedAt: new Date().toISOString(), version: '0' }));
    const env: NodeJS.ProcessEnv = { ...process.env, DEVPROXY_HOME: home };
    delete env.NODE_OPTIONS;
    const result = await runCli(['status'], { cwd: home, env, timeoutMs: 40_000 });
    await clear.check(() => {
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`the daemon \\(pid ${process.pid}\\) does not answer on its admin port ${adminPort}`));
      expect(result.stderr).toContain('devproxy proxy stop');
    });
    // Refused outright (listener gone, process alive): the same message at once.
    const closedPort = await fixedPort();
    await writeFile(join(home, 'daemon.json'), JSON.stringify({ pid: process.pid, httpPort: 1, httpsPort: null, adminPort: closedPort, token: 't', startedAt: new Date().toISOString(), version: '0' }));
    const refused = await runCli(['status'], { cwd: home, env });
    await clear.check(() => {
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toMatch(/does not answer on its admin port \d+ \(ECONNREFUSED\)/);
    });
  }, 60_000);

  it('use exits 1 with the reason when the running daemon does not apply the change', async () => {
    const d = await prepareDaemon(await readOnlyConfig());
    await startDaemon(d);
    // A repository the daemon does not know (never `devproxy init`-ed).
    const other = await createTempRepo({ 'devproxy.yaml': await readOnlyConfig() });
    cleanups.push(() => other.cleanup());
    const unregistered = await d.cli(['use', 'standard'], other.main);
    await clear.check(() => {
      expect(unregistered.code, unregistered.stdout + unregistered.stderr).toBe(1);
      expect(unregistered.stderr).toContain(`the running daemon does not route the worktree at ${other.main}`);
      expect(unregistered.stderr).toContain('devproxy init');
    });
    // A worktree whose .devproxy folder links out of it: the daemon refuses to read the profile.
    const wt = d.repo.addWorktree('linked-state');
    await waitFor(async () => ((await d.get('api.linked-state.localhost')).body === 'REMOTE' ? true : undefined), 10_000, 'worktree routed');
    const elsewhere = await mkdtemp(join(tmpdir(), 'devproxy-rel-elsewhere-'));
    cleanups.push(() => rm(elsewhere, { recursive: true, force: true }));
    await symlink(elsewhere, join(wt, '.devproxy'));
    const linked = await d.cli(['use', 'remote'], wt);
    await clear.check(() => {
      expect(linked.code, linked.stdout + linked.stderr).toBe(1);
      expect(linked.stderr).toMatch(/profile remote is written, but the daemon still routes linked-state with profile \S+: .*outside the worktree/);
    });
  });

  it('the loser of a `proxy start` race says another daemon runs, without the winner\'s log', async () => {
    const d = await prepareDaemon(await readOnlyConfig());
    cleanups.push(() => d.cleanup());
    expect((await d.cli(['init'])).code).toBe(0);
    const results = await Promise.all([d.cli(['proxy', 'start']), d.cli(['proxy', 'start'])]);
    const winner = results.filter((r) => r.code === 0);
    const loser = results.filter((r) => r.code !== 0);
    await clear.check(() => expect(winner).toHaveLength(1));
    const pid = (await d.info())!.pid;
    await clear.check(() => {
      expect(loser).toHaveLength(1);
      expect(loser[0]!.code).toBe(1);
      expect(loser[0]!.stderr).toMatch(new RegExp(`(already|is) running \\(pid ${pid}\\)`));
      expect(loser[0]!.stderr).not.toMatch(/did not start|listening on/);
    });
  });

  it('the admin API answers 404 with a code, not 500, for an unknown service', async () => {
    const d = await prepareDaemon(await readOnlyConfig());
    await startDaemon(d);
    const info = (await d.info())!;
    const response = await fetch(`http://127.0.0.1:${info.adminPort}/api/restart`, {
      method: 'POST',
      headers: { authorization: `Bearer ${info.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ path: d.repo.main, service: 'nope' }),
    });
    const body = (await response.json()) as { error: { code: string; message: string } };
    await clear.check(() => {
      expect(response.status).toBe(404);
      expect(body.error.code).toBe('DEVPROXY_ERR_UNKNOWN_SERVICE');
      expect(body.error.message).toContain('"nope"');
    });
    const cli = await d.cli(['restart', 'nope']);
    await clear.check(() => {
      expect(cli.code).toBe(1);
      expect(cli.stderr).toContain('service "nope" is not defined in devproxy.yaml');
    });
  });
});
