import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { waitFor } from '../helpers/git-repo.js';
import { echoHandler, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { openFds, prepareDaemon, type DaemonUnderTest } from './daemon-harness.js';
import { h2Get, h2Session, measureVictim, p99, rapidReset, sampleResources, sessionClosed, type AttackConnection, type ResourcePeak } from './h2-attacks.js';
import { rawConnect, within } from './raw-client.js';
import { tally } from './tally.js';

/**
 * HTTP/2 and connection floods against a real daemon, each with the resource bounds the issue
 * asks for: the daemon's RSS and descriptors stay under the caps below during every attack, and
 * another client's requests keep a p99 under 1 s. Rapid reset and descriptor exhaustion run
 * against a daemon started under `ulimit -n 256`, as in the report; idle sessions and starvation
 * against one with the machine's limit.
 */
const rapid = tally('h2-rapid-reset');
const idle = tally('idle-connections');
const fairness = tally('h2-fair-share');
const bounds = tally('flood-resource-bounds');

/** Stated caps (generous: the daemon idles at ~100 MB and ~40 descriptors here). */
const RSS_CAP_BYTES = 400 * 1024 * 1024;
/** Under `ulimit -n 256` the cap is the limit itself minus the reserve the admin API needs. */
const LOW_FD_LIMIT = 256;
const LOW_LIMIT_FD_CAP = 240;
const FD_CAP = 800;
/** Another client's p99 during a flood (the issue: under 1 s). */
const VICTIM_P99_CAP_MS = 1_000;
/** How long the daemon may take to close what an attacker left open (keep-alive 5 s + grace). */
const CLOSE_DEADLINE_MS = 20_000;

const API = 'api.contoso.localhost';
const CONFIG = (port: number): string => `name: contoso
services:
  api:
    local: { port: ${port} }
profiles:
  standard: [api]
default: standard
`;

/** `/big`: 8 MiB written with backpressure; `/sink`: answers once the request body ended; else echo. */
function upstreamHandler(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/big') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let left = 128;
    const pump = (): void => {
      while (left > 0) {
        left--;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
    return;
  }
  if (req.url === '/sink') {
    req.resume();
    req.on('end', () => res.end('drained'));
    return;
  }
  echoHandler(req, res);
}

/** Starts the daemon of `d` with `devproxy proxy start` under `ulimit -n <limit>`. */
function startUnderLimit(d: DaemonUnderTest, limit: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', `ulimit -n ${limit} && exec "$@"`, 'sh', process.execPath, CLI, 'proxy', 'start'], { cwd: d.repo.main, env: d.env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout + stderr });
    });
  });
}

async function startDaemon(upstream: Upstream, limit?: number): Promise<DaemonUnderTest> {
  const d = await prepareDaemon(CONFIG(upstream.port));
  expect((await d.cli(['init'])).code).toBe(0);
  const started = limit === undefined ? await d.cli(['proxy', 'start']) : await startUnderLimit(d, limit);
  expect(started.code, 'stdout' in started ? started.stderr + started.stdout : started.out).toBe(0);
  await waitFor(async () => ((await d.get(API)).status === 200 ? true : undefined), 10_000, 'api routed');
  return d;
}

/** A victim GET through the plain listener on a fresh connection. */
function victimGet(d: DaemonUnderTest): () => Promise<number> {
  return async () => (await d.get(API, '/victim')).status;
}

/** The admin API answers `/api/status` with the token. */
async function adminStatus(d: DaemonUnderTest): Promise<number> {
  const info = (await d.info())!;
  const res = await within(fetch(`http://127.0.0.1:${info.adminPort}/api/status?probe=0`, { headers: { authorization: `Bearer ${info.token}` } }), 10_000, 'admin status');
  return res.status;
}

function expectBounded(peak: ResourcePeak, fdCap: number, latencies: number[], failures: string[]): void {
  expect(peak.rssBytes, `daemon RSS peaked at ${(peak.rssBytes / 1048576).toFixed(0)} MB`).toBeLessThan(RSS_CAP_BYTES);
  expect(peak.fds, `daemon descriptors peaked at ${peak.fds}`).toBeLessThan(fdCap);
  expect(failures, 'victim requests that failed').toEqual([]);
  expect(latencies.length).toBeGreaterThanOrEqual(30);
  expect(p99(latencies), `victim p99 over ${latencies.length} requests`).toBeLessThan(VICTIM_P99_CAP_MS);
}

describe('under ulimit -n 256: rapid reset and descriptor floods', () => {
  let upstream: Upstream;
  let d: DaemonUnderTest;
  let pid: number;
  let httpsPort: number;

  beforeAll(async () => {
    upstream = await startHttpUpstream(upstreamHandler);
    d = await startDaemon(upstream, LOW_FD_LIMIT);
    const info = (await d.info())!;
    pid = info.pid;
    httpsPort = info.httpsPort!;
    const limits = await readFile(`/proc/${pid}/limits`, 'utf8');
    expect(limits).toMatch(new RegExp(`Max open files\\s+${LOW_FD_LIMIT}\\s`));
  });

  afterAll(async () => {
    await d?.cleanup();
    await upstream?.close();
  });

  it('22 rounds of 10 rapid-reset connections: each is closed by the daemon, others are served meanwhile, resources stay bounded', async () => {
    const baseline = await openFds(pid);
    const sampler = sampleResources(pid);
    const attacks: AttackConnection[] = [];
    let attacking = true;
    let victimSamples = 0;
    const attack = (async () => {
      // 22 rounds as reported, and on until the victim has enough samples for a p99 (bounded).
      for (let round = 0; round < 22 || (victimSamples < 100 && round < 80); round++) {
        attacks.push(...(await Promise.all(Array.from({ length: 10 }, () => rapidReset(httpsPort, API, 1_000).catch(() => undefined)))).filter((a): a is AttackConnection => a !== undefined));
      }
      attacking = false;
    })();
    const victim = await measureVictim(
      async () => {
        victimSamples++;
        return victimGet(d)();
      },
      { minCount: 20, maxCount: 400, maxMs: 90_000, busy: () => attacking },
    );
    await attack;
    await bounds.check(async () => {
      expectBounded(await sampler.stop(), LOW_LIMIT_FD_CAP, victim.latencies, victim.failures);
    });
    await rapid.check(async () => {
      expect(attacks.length).toBeGreaterThan(0);
      await within(Promise.all(attacks.map((a) => a.closed)), CLOSE_DEADLINE_MS, `the daemon closing ${attacks.length} rapid-reset connections`);
    });
    await rapid.check(async () => {
      await waitFor(async () => ((await openFds(pid)) <= baseline + 10 ? true : undefined), CLOSE_DEADLINE_MS, 'descriptors back near the baseline');
      expect(await adminStatus(d)).toBe(200);
    });
  }, 180_000);

  it('300 connections that send nothing: the admin API and `devproxy status` still answer at the descriptor limit', async () => {
    const sampler = sampleResources(pid);
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const socket = await rawConnect(i % 2 === 0 ? d.httpPort : httpsPort).catch(() => undefined);
        if (socket !== undefined) {
          socket.on('error', () => undefined);
          held.push(socket);
        }
      }
      await rapid.check(async () => {
        expect(await adminStatus(d)).toBe(200);
        const status = await within(d.cli(['status', '--json']), 20_000, 'devproxy status');
        expect(status.code, status.stderr).toBe(0);
        expect(JSON.parse(status.stdout).daemon.running).toBe(true);
      });
      await bounds.check(async () => {
        const peak = await sampler.stop();
        expect(peak.fds, `daemon descriptors peaked at ${peak.fds}`).toBeLessThan(LOW_LIMIT_FD_CAP);
        expect(peak.rssBytes).toBeLessThan(RSS_CAP_BYTES);
      });
    } finally {
      for (const socket of held) socket.destroy();
    }
    await rapid.check(async () => {
      // Until the daemon has seen the flood's sockets close, a new connection may still be over budget (reset).
      await waitFor(async () => ((await d.get(API, '/after').catch(() => undefined))?.status === 200 ? true : undefined), 10_000, 'the proxy serving again once the flood ended');
    });
  }, 120_000);
});

/**
 * A slow upload to `/sink` on `session`: one byte a second (the pace is the scenario, not a wait
 * for a condition) past the daemon's keep-alive timeout, then the end; its answer must arrive.
 * `closedEarly` says whether the session closed meanwhile.
 */
async function slowUpload(session: ClientHttp2Session): Promise<{ body: string; closedEarly: boolean }> {
  const stream = session.request({ ':path': '/sink', ':method': 'POST' }, { endStream: false });
  stream.on('data', () => undefined);
  stream.write('x');
  let closedEarly = false;
  session.once('close', () => (closedEarly = true));
  const ticks = 7;
  for (let i = 0; i < ticks; i++) {
    await new Promise<void>((resolve) => stream.write('y', () => setTimeout(resolve, 1_000)));
  }
  const body = await within(
    new Promise<string>((resolve, reject) => {
      let text = '';
      stream.on('data', (c: Buffer) => (text += c.toString()));
      stream.on('end', () => resolve(text));
      stream.on('error', reject);
      stream.end();
    }),
    10_000,
    'the slow upload answer',
  );
  return { body, closedEarly };
}

describe('with the machine’s descriptor limit: idle sessions and one client starving a service', () => {
  let upstream: Upstream;
  let d: DaemonUnderTest;
  let pid: number;
  let httpsPort: number;

  beforeAll(async () => {
    upstream = await startHttpUpstream(upstreamHandler);
    d = await startDaemon(upstream);
    const info = (await d.info())!;
    pid = info.pid;
    httpsPort = info.httpsPort!;
  });

  afterAll(async () => {
    await d?.cleanup();
    await upstream?.close();
  });

  // The three idle cases run at once: each waits out the daemon's keep-alive timeout, and
  // none of them loads the daemon enough to move another's deadline.
  it.concurrent('200 h2 sessions idle after their first request are closed by the daemon', async () => {
    const sampler = sampleResources(pid);
    const sessions: ClientHttp2Session[] = [];
    try {
      for (let i = 0; i < 200; i++) sessions.push(await h2Session(httpsPort, API));
      const statuses = await Promise.all(sessions.map((s) => h2Get(s, '/first')));
      expect(statuses.every((s) => s === 200)).toBe(true);
      await idle.check(async () => {
        await within(Promise.all(sessions.map(sessionClosed)), CLOSE_DEADLINE_MS, 'the daemon closing 200 idle h2 sessions');
      });
      await bounds.check(async () => {
        const peak = await sampler.stop();
        expect(peak.rssBytes).toBeLessThan(RSS_CAP_BYTES);
        expect(peak.fds).toBeLessThan(FD_CAP);
      });
    } finally {
      for (const s of sessions) s.destroy();
    }
  }, 60_000);

  it.concurrent('HTTP/1.1-over-TLS keep-alive connections idle after their first request are closed by the daemon', async () => {
    const sockets: TLSSocket[] = [];
    try {
      for (let i = 0; i < 50; i++) {
        const socket = await new Promise<TLSSocket>((resolve, reject) => {
          const s = tlsConnect({ port: httpsPort, host: '127.0.0.1', servername: API, ALPNProtocols: ['http/1.1'], rejectUnauthorized: false }, () => resolve(s));
          s.once('error', reject);
        });
        sockets.push(socket);
      }
      const answered = sockets.map(
        (s) =>
          new Promise<string>((resolve) => {
            let data = '';
            s.on('data', (c: Buffer) => {
              data += c.toString('latin1');
              if (data.includes('\r\n\r\n')) resolve(data);
            });
          }),
      );
      for (const s of sockets) s.write(`GET /first HTTP/1.1\r\nHost: ${API}\r\n\r\n`);
      const heads = await within(Promise.all(answered), 10_000, 'first responses');
      expect(heads.every((h) => h.startsWith('HTTP/1.1 200'))).toBe(true);
      await idle.check(async () => {
        await within(Promise.all(sockets.map((s) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve()))))), CLOSE_DEADLINE_MS, 'the daemon closing 50 idle TLS keep-alive connections');
      });
    } finally {
      for (const s of sockets) s.destroy();
    }
  }, 60_000);

  it.concurrent('an h2 session whose streams are busy is not cut for idleness', async () => {
    await idle.check(async () => {
      const session = await h2Session(httpsPort, API);
      try {
        const upload = await slowUpload(session);
        expect(upload.body).toBe('drained');
        expect(upload.closedEarly).toBe(false);
      } finally {
        session.destroy();
      }
    });
  }, 30_000);

  // The keep-alive deadline is one timer per session, moved when the last stream closes: here it
  // comes due while the second stream is busy, must let that stream finish, and must still close
  // the session once it is idle again.
  it.concurrent('an h2 session busy again after its first request is not cut, and is closed once idle', async () => {
    await idle.check(async () => {
      const session = await h2Session(httpsPort, API);
      try {
        expect(await h2Get(session, '/first')).toBe(200);
        const upload = await slowUpload(session);
        expect(upload.body).toBe('drained');
        expect(upload.closedEarly).toBe(false);
        await within(sessionClosed(session), CLOSE_DEADLINE_MS, 'the daemon closing the session once idle again');
      } finally {
        session.destroy();
      }
    });
  }, 45_000);

  async function floodedVictim(attack: () => Promise<ClientHttp2Session[]>): Promise<{ peak: ResourcePeak; latencies: number[]; failures: string[] }> {
    const sampler = sampleResources(pid);
    const sessions = await attack();
    const other = await h2Session(httpsPort, API);
    try {
      const victim = await measureVictim(victimGet(d), { minCount: 30, maxCount: 30, maxMs: 60_000, busy: () => true });
      // Another h2 client, on a connection of its own, too.
      const h2Victim = await measureVictim(() => h2Get(other, '/victim-h2'), { minCount: 10, maxCount: 10, maxMs: 30_000, busy: () => true });
      return { peak: await sampler.stop(), latencies: [...victim.latencies, ...h2Victim.latencies], failures: [...victim.failures, ...h2Victim.failures] };
    } finally {
      other.destroy();
      for (const s of sessions) s.destroy();
    }
  }

  it('one h2 connection with 300 zero-window streams of a big download does not starve other clients', async () => {
    const result = await floodedVictim(async () => {
      const session = await h2Session(httpsPort, API, { initialWindowSize: 0 });
      const opened: Promise<void>[] = [];
      for (let i = 0; i < 300; i++) {
        const stream = session.request({ ':path': '/big' });
        stream.on('error', () => undefined);
        opened.push(new Promise((resolve) => stream.once('response', () => resolve())));
      }
      // The flood is on once the first streams have their answer heads (bodies cannot flow).
      await within(Promise.race(opened), 10_000, 'the first zero-window response');
      return [session];
    });
    await fairness.check(() => expectBounded(result.peak, FD_CAP, result.latencies, result.failures));
  }, 120_000);

  it('4 h2 connections of never-ending POST streams (5,000 tried) do not starve other clients', async () => {
    const result = await floodedVictim(async () => {
      const sessions = await Promise.all(Array.from({ length: 4 }, () => h2Session(httpsPort, API)));
      let sent = 0;
      for (let i = 0; i < 5_000; i++) {
        const stream = sessions[i % sessions.length]!.request({ ':path': '/sink', ':method': 'POST' }, { endStream: false });
        stream.on('error', () => undefined);
        stream.write('never ends', () => sent++);
      }
      await waitFor(() => (sent >= 100 ? true : undefined), 10_000, 'the first uploads under way');
      // 30 s: 5,000 streams reach the daemon while other suites load the machine (10 s ran out once in CI).
      await waitFor(() => (upstream.requests.filter((r) => r.url === '/sink').length >= 100 ? true : undefined), 30_000, 'uploads reaching the upstream');
      return sessions;
    });
    await fairness.check(() => expectBounded(result.peak, FD_CAP, result.latencies, result.failures));
  }, 120_000);
});
