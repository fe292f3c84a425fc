import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { writeFileAtomic } from '../../atomic-write.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { validateProfile } from '../../profiles/validate-profile.js';
import { waitFor } from '../helpers/git-repo.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { initAndStart, openFds, prepareDaemon, rssBytes, type DaemonUnderTest } from './daemon-harness.js';
import { isAlive } from '../../workspace/home.js';
import { within } from './raw-client.js';
import { tally } from './tally.js';

/**
 * A real daemon (the compiled CLI's `proxy start`, its own process) under profile flips with
 * load, SIGKILL and restart, SIGTERM with work in flight, corrupted files and racing commands.
 */
const flips = tally('profile-flips-under-load');
const restart = tally('sigkill-restart');
const sigterm = tally('sigterm-drain');
const corrupt = tally('corrupted-files');
const race = tally('cli-race');

/** Flips, load requests and race rounds are bounded in count and in time. */
const FLIPS = 100;
const FLIP_BUDGET_MS = 45_000;
const LOAD_CONCURRENCY = 6;
const RACE_ROUNDS = 20;
// A round is two CLI start-ups racing: ~1 s on a quiet machine, up to ~5 s on two loaded cores.
const RACE_BUDGET_MS = 120_000;
/** Idle pooled keep-alive connections to the upstreams close within ~5 s; the wait covers them. */
const FD_TOLERANCE = 4;
const FD_SETTLE_MS = 12_000;
const RSS_TOLERANCE_BYTES = 48 * 1024 * 1024;

const API = 'api.contoso.localhost';
const UI = 'ui.contoso.localhost';
const WORKER = 'worker.contoso.localhost';

let a: Upstream;
let b: Upstream;
let ui: Upstream;
let worker: Upstream;
let wss: WebSocketServer;
let d: DaemonUnderTest;
let profileFile: string;
let configFile: string;
let goodConfig: string;

/** Called when a /slow request reaches an upstream. */
let slowArrived: (() => void) | undefined;

const PROFILE_LOCAL = 'profile: standard\n';
const PROFILE_REMOTE = 'profile: minimal\n';

beforeAll(async () => {
  const slowOr = (name: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!req.url?.startsWith('/slow')) return res.end(name);
    slowArrived?.();
    setTimeout(() => res.end(`${name} slow done`), 1_500);
  };
  a = await startHttpUpstream(slowOr('A'));
  b = await startHttpUpstream(slowOr('B'));
  ui = await startHttpUpstream((_req, res) => res.end('UI'));
  worker = await startHttpUpstream((_req, res) => res.end('WORKER'));
  wss = new WebSocketServer({ server: a.server as http.Server });
  wss.on('connection', (socket) => socket.on('message', (data) => socket.send(String(data))));
  goodConfig = `name: contoso
services:
  api:
    local: { port: ${a.port} }
    remote: http://api-dev.localhost:${b.port}
  ui:
    local: { port: ${ui.port} }
    remote: https://ui-dev.localhost:1
  worker:
    local: { port: ${worker.port} }
    remote: http://worker-dev.localhost:${b.port}
  legacy:
    remote: { url: "https://legacy-dev.localhost:1", insecure: true }
profiles:
  minimal: [ui]
  standard: [ui, api]
  full: [ui, api, worker]
default: minimal
`;
  d = await prepareDaemon(goodConfig);
  profileFile = join(d.repo.main, '.devproxy', 'profile.yaml');
  configFile = join(d.repo.main, 'devproxy.yaml');
  await initAndStart(d);
  await writeFileAtomic(profileFile, PROFILE_LOCAL);
  await waitFor(async () => ((await d.get(API)).body === 'A' ? true : undefined), 5_000, 'api → A');
});

afterAll(async () => {
  for (const client of wss?.clients ?? []) client.terminate();
  wss?.close();
  await d?.cleanup();
  await Promise.all([a?.close(), b?.close(), ui?.close(), worker?.close()]);
});

async function daemonPid(): Promise<number> {
  const info = await d.info();
  if (!info) throw new Error('daemon.json missing');
  return info.pid;
}

/** The api route's body settles on `expected` (the table follows the file). */
function settlesOn(expected: 'A' | 'B', ms = 5_000): Promise<true> {
  return waitFor(async () => ((await d.get(API)).body === expected ? true : undefined), ms, `api → ${expected}`);
}

describe('SIGTERM drains', () => {
  it('a request in flight finishes, an open WebSocket is closed, the daemon exits 0 within the bound, and restarts', async () => {
    await sigterm.check(async () => {
      await writeFileAtomic(profileFile, PROFILE_LOCAL);
      await settlesOn('A');
      const pid = await daemonPid();
      const ws = new WebSocket(`ws://127.0.0.1:${d.httpPort}/`, { headers: { host: API } });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const wsClosed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      const reached = new Promise<void>((resolve) => (slowArrived = resolve));
      const inFlight = d.get(API, '/slow');
      await within(reached, 8_000, 'the in-flight request at the upstream');
      process.kill(pid, 'SIGTERM');
      const res = await within(inFlight, 8_000, 'the in-flight request during SIGTERM');
      expect(res).toEqual({ status: 200, body: 'A slow done' });
      await within(wsClosed, 8_000, 'the WebSocket to be closed');
      await waitFor(() => (isAlive(pid) ? undefined : true), 8_000, 'the daemon to exit').catch(async (error: Error) => {
        throw new Error(`${error.message}; daemon log:\n${(await readFile(join(d.home, 'logs', 'daemon.log'), 'utf8')).split('\n').slice(-15).join('\n')}`);
      });
      expect(await d.info()).toBeUndefined();
      const log = await readFile(join(d.home, 'logs', 'daemon.log'), 'utf8');
      expect(log).toContain('stopped');
      const started = await d.cli(['proxy', 'start']);
      expect(started.code, started.stderr).toBe(0);
      await settlesOn('A');
    });
  }, 40_000);
});

describe('SIGKILL and restart', () => {
  it('a request in flight gets a clean error; every route, profile and worktree comes back from files; the stale daemon.json is handled', async () => {
    await restart.check(async () => {
      const feature = d.repo.addWorktree('feature/hierarchy-filters');
      await writeFileAtomic(join(feature, '.devproxy', 'profile.yaml'), 'profile: full\n');
      await writeFileAtomic(profileFile, PROFILE_LOCAL);
      await waitFor(async () => ((await d.get('worker.hierarchy-filters.localhost')).body === 'WORKER' ? true : undefined), 8_000, 'the new worktree to be routed');
      await settlesOn('A');
      const normalise = (report: Awaited<ReturnType<DaemonUnderTest['status']>>) => {
        const { pid: _pid, ...daemon } = report.daemon;
        return { ...report, daemon: { ...daemon, httpsPort: null }, worktrees: report.worktrees.map((w) => ({ ...w, services: w.services.map(({ httpsUrl: _h, runtime: _r, ...s }) => s) })) };
      };
      const before = normalise(await d.status());
      const hosts = [API, UI, WORKER, 'api.hierarchy-filters.localhost', 'worker.hierarchy-filters.localhost', 'ui.hierarchy-filters.localhost'];
      const answersBefore = await Promise.all(hosts.map((h) => d.get(h)));

      const pid = await daemonPid();
      const reached = new Promise<void>((resolve) => (slowArrived = resolve));
      const inFlight = d.get(API, '/slow').then(
        (res) => `answered ${res.status}`,
        (error: NodeJS.ErrnoException) => error.code ?? error.message,
      );
      await within(reached, 5_000, 'the in-flight request at the upstream');
      process.kill(pid, 'SIGKILL');
      const outcome = await within(inFlight, 5_000, 'the in-flight request during SIGKILL');
      expect(['ECONNRESET', 'socket hang up']).toContain(outcome);
      await waitFor(() => (isAlive(pid) ? undefined : true), 5_000, 'the daemon to die');

      // daemon.json is left behind with a dead pid: the CLI must see through it.
      expect((await d.info())?.pid).toBe(pid);
      const stale = await d.cli(['proxy', 'status', '--json']);
      expect(stale.code).toBe(3);
      expect(JSON.parse(stale.stdout)).toEqual({ running: false });
      const started = await d.cli(['proxy', 'start']);
      expect(started.code, started.stderr + started.stdout).toBe(0);
      expect((await d.info())?.pid).not.toBe(pid);

      const after = await waitFor(async () => {
        const report = normalise(await d.status());
        return JSON.stringify(report) === JSON.stringify(before) ? report : undefined;
      }, 8_000, 'status after restart to equal status before').catch(async () => normalise(await d.status()));
      expect(after).toEqual(before);
      const answersAfter = await Promise.all(hosts.map((h) => d.get(h)));
      expect(answersAfter).toEqual(answersBefore);
      const cliStatus = JSON.parse((await d.cli(['status', '--json', '--no-probe'])).stdout) as Awaited<ReturnType<DaemonUnderTest['status']>>;
      const legacy = cliStatus.worktrees.find((w) => w.main)!.services.find((s) => s.name === 'legacy')!;
      expect(legacy.insecure).toBe(true);
      expect(cliStatus.worktrees.find((w) => w.main)!.services.find((s) => s.name === 'ui')!.insecure).toBe(false);
    });
  }, 60_000);
});

describe('100 profile flips under continuous load', () => {
  it('zero failed requests; file descriptors and memory back to baseline', async () => {
    await flips.check(async () => {
      const pid = await daemonPid();
      const agent = new http.Agent({ keepAlive: true, maxSockets: LOAD_CONCURRENCY });
      // Warm up the pools and the JIT so the baseline is the daemon at work, not at rest.
      for (let i = 0; i < 50; i++) await d.get(API, '/', agent);
      agent.destroy();
      await new Promise((r) => setTimeout(r, 300));
      const fdsBefore = await openFds(pid);
      const rssBefore = await rssBytes(pid);

      const load = new http.Agent({ keepAlive: true, maxSockets: LOAD_CONCURRENCY });
      const failures: string[] = [];
      const bodies = new Map<string, number>();
      let sent = 0;
      let loading = true;
      const worker = async () => {
        while (loading) {
          sent++;
          try {
            const res = await d.get(API, '/', load);
            if (res.status !== 200 || (res.body !== 'A' && res.body !== 'B')) failures.push(`${res.status} ${res.body.slice(0, 120)}`);
            bodies.set(res.body, (bodies.get(res.body) ?? 0) + 1);
          } catch (error) {
            failures.push(String(error));
          }
        }
      };
      const workers = Array.from({ length: LOAD_CONCURRENCY }, worker);
      const deadline = Date.now() + FLIP_BUDGET_MS;
      let flipped = 0;
      try {
        for (let i = 0; i < FLIPS && Date.now() < deadline; i++) {
          const toRemote = i % 2 === 0;
          await writeFileAtomic(profileFile, toRemote ? PROFILE_REMOTE : PROFILE_LOCAL);
          // Every tenth flip waits until it is seen, so the flips are proven to be applied;
          // the others are as rapid as an agent or a script would write them.
          if (i % 10 === 9) await settlesOn(toRemote ? 'B' : 'A');
          flipped++;
        }
      } finally {
        loading = false;
        await Promise.all(workers);
        load.destroy();
      }
      await writeFileAtomic(profileFile, PROFILE_LOCAL);
      await settlesOn('A');
      expect(flipped).toBe(FLIPS);
      expect(failures.slice(0, 5)).toEqual([]);
      expect(bodies.get('A') ?? 0).toBeGreaterThan(0);
      expect(bodies.get('B') ?? 0).toBeGreaterThan(0);

      const fdsAfter = await waitFor(async () => {
        const n = await openFds(pid);
        return n <= fdsBefore + FD_TOLERANCE ? n : undefined;
      }, FD_SETTLE_MS, `daemon fds back near ${fdsBefore}`).catch(async () => openFds(pid));
      const rssAfter = await rssBytes(pid);
      console.log(`reliability profile-flips-under-load detail: ${flipped} flips, ${sent} requests (A ${bodies.get('A') ?? 0}, B ${bodies.get('B') ?? 0}), fds ${fdsBefore} → ${fdsAfter}, rss ${(rssBefore / 1e6).toFixed(1)} → ${(rssAfter / 1e6).toFixed(1)} MB`);
      expect(fdsAfter).toBeLessThanOrEqual(fdsBefore + FD_TOLERANCE);
      expect(rssAfter).toBeLessThanOrEqual(rssBefore + RSS_TOLERANCE_BYTES);
    });
  }, 90_000);
});

describe('corrupted and torn files keep the last good routes', () => {
  /** Waits until status names `file` in a diagnostic; returns its text. */
  async function diagnosticFor(file: string): Promise<string> {
    return waitFor(async () => {
      const report = await d.status();
      const all = [...report.diagnostics, ...report.worktrees.flatMap((w) => w.diagnostics)];
      return all.find((x) => x.file === file && x.severity !== 'warning')?.text;
    }, 5_000, `a diagnostic for ${file}`);
  }

  async function noDiagnostics(): Promise<true> {
    return waitFor(async () => {
      const report = await d.status();
      const all = [...report.diagnostics, ...report.worktrees.flatMap((w) => w.diagnostics)].filter((x) => x.severity !== 'warning');
      return all.length === 0 ? true : undefined;
    }, 5_000, 'diagnostics to clear');
  }

  const badContents: Array<[string, (path: string) => Promise<void>]> = [
    ['truncated YAML', (path) => writeFileAtomic(path, 'profile: [minim')],
    ['an empty file', (path) => writeFileAtomic(path, '')],
    ['binary garbage', (path) => writeFileAtomic(path, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x00, 0x80, 0x0a]))],
    ['a directory in its place', async (path) => {
      await rm(path, { force: true });
      await mkdir(path);
    }],
    ['a torn write (half a file, in place)', (path) => writeFile(path, 'prof')],
  ];

  for (const [what, breakIt] of badContents) {
    it(`profile file → ${what}: routes stay, status names the file and a fix, recovery when fixed`, async () => {
      // A directory can only replace the file after a deletion, and a deleted profile file
      // rightly means the default profile (minimal); start from it so both states agree.
      const viaDeletion = what.startsWith('a directory');
      const [start, startBody, startName, next, nextBody] = viaDeletion
        ? [PROFILE_REMOTE, 'B', 'minimal', PROFILE_LOCAL, 'A'] as const
        : [PROFILE_LOCAL, 'A', 'standard', PROFILE_REMOTE, 'B'] as const;
      await corrupt.check(async () => {
        await writeFileAtomic(profileFile, start);
        await settlesOn(startBody);
        await noDiagnostics();
        try {
          await breakIt(profileFile);
          const text = await diagnosticFor(profileFile);
          expect(text).toContain(profileFile);
          expect(text).toContain(' — ');
          expect((await d.get(API)).body).toBe(startBody);
          expect((await d.status()).worktrees.find((w) => w.main)!.profile).toBe(startName);
        } finally {
          await rm(profileFile, { recursive: true, force: true });
        }
        await writeFileAtomic(profileFile, next);
        await settlesOn(nextBody);
        await noDiagnostics();
        await writeFileAtomic(profileFile, PROFILE_LOCAL);
        await settlesOn('A');
      });
    });
  }

  for (const [what, breakIt] of badContents) {
    it(`devproxy.yaml → ${what}: routes stay, status names the file and a fix, recovery when fixed`, async () => {
      await corrupt.check(async () => {
        await writeFileAtomic(profileFile, PROFILE_LOCAL);
        await settlesOn('A');
        try {
          await breakIt(configFile);
          const text = await diagnosticFor(configFile);
          expect(text).toContain(configFile);
          expect((await d.get(API)).body).toBe('A');
          expect((await d.get(UI)).body).toBe('UI');
        } finally {
          await rm(configFile, { recursive: true, force: true });
          await writeFileAtomic(configFile, goodConfig);
        }
        await noDiagnostics();
        expect((await d.get(API)).body).toBe('A');
      });
    });
  }

  it('repos.json → garbage: the registered repository stays routed (torn_repos_json_dropped_every_route)', async () => {
    await corrupt.check(async () => {
      const repos = join(d.home, 'repos.json');
      const good = await readFile(repos, 'utf8');
      try {
        await writeFile(repos, '{"repos": ["/tm');
        const text = await diagnosticFor(repos);
        expect(text).toContain('not valid JSON');
        expect(text).toContain('devproxy init');
        expect((await d.get(API)).body).toBe('A');
        expect((await d.status()).worktrees.length).toBeGreaterThan(0);
        // `init` must not "repair" the registry by overwriting it with one repository.
        const init = await d.cli(['init']);
        expect(init.code).toBe(1);
        expect(init.stderr).toContain(repos);
        expect(await readFile(repos, 'utf8')).toBe('{"repos": ["/tm');
      } finally {
        await writeFileAtomic(repos, good);
      }
      await noDiagnostics();
      await settlesOn('A');
    });
  });
});

describe('two CLI commands racing', () => {
  it(`use standard and use full at once, ${RACE_ROUNDS} rounds: the file is always one of the two and the daemon agrees`, async () => {
    {
      const config = validateConfig(goodConfig, configFile).config!;
      const deadline = Date.now() + RACE_BUDGET_MS;
      let rounds = 0;
      for (let i = 0; i < RACE_ROUNDS && Date.now() < deadline; i++) {
        const [first, second] = await Promise.all([d.cli(['use', 'standard', '--no-wait']), d.cli(['use', 'full', '--no-wait'])]);
        const text = await readFile(profileFile, 'utf8');
        const check = validateProfile(text, profileFile, config);
        expect(check.errors).toEqual([]);
        const name = check.profile!.profile;
        expect(['standard', 'full']).toContain(name);
        // Either both ran one after the other, or the loser of the race says so and wrote nothing.
        for (const [result, profile] of [[first, 'standard'], [second, 'full']] as const) {
          if (result.code === 0) continue;
          expect(result.code, result.stderr).toBe(1);
          expect(result.stderr).toContain('while this one ran');
          expect(name).not.toBe(profile);
        }
        expect(first.code === 0 || second.code === 0).toBe(true);
        await waitFor(async () => {
          const report = await d.status();
          const main = report.worktrees.find((w) => w.main)!;
          const workerRoute = main.services.find((s) => s.name === 'worker')!;
          return main.profile === name && workerRoute.desired === (name === 'full' ? 'local' : 'remote') ? true : undefined;
        }, 10_000, `the daemon to show ${name}`).catch(async (error: Error) => {
          const main = (await d.status()).worktrees.find((w) => w.main)!;
          const log = (await readFile(join(d.home, 'logs', 'daemon.log'), 'utf8')).split('\n').slice(-8).join('\n');
          throw new Error(`${error.message}: the file says ${name}, status says ${main.profile} (worker ${JSON.stringify(main.services.find((s) => s.name === 'worker'))})\n${log}`);
        });
        race.passed();
        rounds++;
      }
      expect(rounds).toBe(RACE_ROUNDS);
      expect((await d.get(WORKER)).status).toBe(200);
    }
  }, RACE_BUDGET_MS + 30_000);
});

describe('SIGTERM right after many flips', () => {
  it('runtime_close_waited_for_queued_drains: the daemon still exits within the bound', async () => {
    await sigterm.check(async () => {
      const pid = await daemonPid();
      // Every flip that made a service leave queued a reconcile with a 2 s drain; close() waited
      // for the whole queue, so after the race above the daemon outlived main.ts's 10 s bound.
      for (let i = 0; i < 6; i++) await writeFileAtomic(profileFile, i % 2 === 0 ? PROFILE_REMOTE : PROFILE_LOCAL);
      await new Promise((r) => setTimeout(r, 300));
      process.kill(pid, 'SIGTERM');
      await waitFor(() => (isAlive(pid) ? undefined : true), 8_000, 'the daemon to exit after SIGTERM');
      expect(await d.info()).toBeUndefined();
    });
  }, 20_000);
});
