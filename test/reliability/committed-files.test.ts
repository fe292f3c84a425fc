import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_COMPOSE_ALIASES, MAX_COMPOSE_EXPANDED_SIZE, readComposeFile } from '../../runtime/compose.js';
import type { StatusReport } from '../../workspace/status.js';
import { waitFor } from '../helpers/git-repo.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { initAndStart, openFds, prepareDaemon, rssBytes, type DaemonUnderTest } from './daemon-harness.js';
import { fixedPort } from '../helpers/fixed-ports.js';
import { within } from './raw-client.js';
import { tally } from './tally.js';

/**
 * A hostile branch against a real daemon (issue #11 items 2, 3, 5, 10, 11, 12): committed
 * symlinks to /dev/zero, FIFOs, giant YAML, a newline in a worktree path, a worktree deleted
 * with `rm -rf`, many worktrees removed at once; `${file:}` references and `ca:` files naming
 * /dev/zero, a FIFO, a folder or a large file (security review finding 2). Each attack must end as a diagnostic on the
 * attacked worktree while every other route keeps serving within the stated resource bounds.
 */
const files = tally('committed-files');
const gone = tally('deleted-worktrees');
const bounds = tally('file-attack-bounds');
const storm = tally('worktree-removal-storm');
const referenced = tally('referenced-files');
const composeFiles = tally('compose-files');

/**
 * Bounds asked for by issue #11: another client's p99 under 100 ms during a file attack; the
 * daemon's RSS stays under its pre-attack size + 96 MiB (a /dev/zero read once grew it by
 * 14 GB), and its descriptors under the pre-attack count + 32 (a wedged FIFO holds one each).
 */
const P99_LIMIT_MS = 100;
const RSS_GROWTH_LIMIT = 96 * 1024 * 1024;
const FD_GROWTH_LIMIT = 32;
/** Latency samples per attack: enough for a p99, bounded in count and time. */
const MIN_SAMPLES = 100;
const MAX_SAMPLES = 2_000;
const ATTACK_BUDGET_MS = 30_000;
const STORM_WORKTREES = 30;

const MAIN = 'api.contoso.localhost';
let upstream: Upstream;
let d: DaemonUnderTest;
let pid: number;
let baseRss: number;
let baseFds: number;

beforeAll(async () => {
  upstream = await startHttpUpstream((_req, res) => res.end('MAIN'));
  d = await prepareDaemon(`name: contoso
services:
  api:
    local: { port: ${upstream.port} }
    remote: http://api-dev.localhost:${upstream.port}
profiles:
  standard: [api]
default: remote
`);
  await initAndStart(d);
  await waitFor(async () => ((await d.get(MAIN)).body === 'MAIN' ? true : undefined), 10_000, 'main route');
  // Warm the daemon's and this client's code paths before measuring anything.
  const warm = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 200; i++) await d.get(MAIN, '/', warm);
  warm.destroy();
  pid = (await d.info())!.pid;
  baseRss = await rssBytes(pid);
  baseFds = await openFds(pid);
}, 60_000);

afterAll(async () => {
  await d?.cleanup();
  await upstream?.close();
});

/** Commits `entries` on a new branch without checking it out (git plumbing), as a pushed branch would arrive. */
function commitBranch(branch: string, entries: Array<{ name: string; mode: '100644' | '120000'; content: string | Buffer }>): void {
  const git = (args: string[], input?: string | Buffer) => execFileSync('git', ['-c', 'user.email=t@devproxy.test', '-c', 'user.name=t', ...args], { cwd: d.repo.main, input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).trim();
  const lines = entries.map((e) => `${e.mode} blob ${git(['hash-object', '-w', '--stdin'], e.content)}\t${e.name}`);
  const tree = git(['mktree'], `${lines.join('\n')}\n`);
  git(['branch', branch, git(['commit-tree', tree, '-p', 'HEAD', '-m', `hostile ${branch}`])]);
}

/** `git worktree add` without blocking this process, whose event loop also runs the latency client. */
async function addWorktree(branch: string, options: { create?: boolean; folder?: string } = {}): Promise<string> {
  const path = join(d.repo.root, options.folder ?? branch);
  await promisify(execFile)('git', ['worktree', 'add', '-q', ...(options.create ? ['-b', branch, path] : [path, branch])], { cwd: d.repo.main });
  return path;
}

async function worktreeOf(path: string): Promise<StatusReport['worktrees'][number] | undefined> {
  return (await d.status()).worktrees.find((w) => w.path === path);
}

/**
 * Polls the admin API every STATUS_POLL_MS: a status is a whole report, and asking for one every
 * millisecond would load the daemon under measurement more than the attack does.
 */
const STATUS_POLL_MS = 50;
function pollStatus<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  return waitFor(async () => (await check()) ?? (await new Promise<undefined>((r) => setTimeout(() => r(undefined), STATUS_POLL_MS))), ATTACK_BUDGET_MS, what);
}

/** Waits until the daemon reports a diagnostic matching `message` on the worktree at `path`. */
function diagnosticOn(path: string, message: RegExp): Promise<string> {
  return pollStatus(async () => (await worktreeOf(path))?.diagnostics.map((x) => x.message).find((m) => message.test(m)), `a diagnostic ${message} on ${path}`);
}

/**
 * The other client, in its own process so that this process's own work (spawning git, reading
 * /proc) is not counted as the daemon's latency: sequential keep-alive GETs until its stdin
 * closes and it has MIN_SAMPLES, then it prints every latency (ms) and status as JSON.
 */
const CLIENT = `
const http = require('node:http');
const [port, host, min, max, budget] = process.argv.slice(1).map((v, i) => (i === 1 ? v : Number(v)));
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let stop = false;
process.stdin.on('end', () => (stop = true)).resume();
const started = Date.now();
const one = () => new Promise((resolve) => {
  const t0 = performance.now();
  const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent }, (res) => {
    res.resume();
    res.on('end', () => resolve([performance.now() - t0, res.statusCode]));
  });
  req.on('error', () => resolve([performance.now() - t0, 0]));
  req.end();
});
(async () => {
  // Its own warm-up (connection, JIT) is not the daemon's latency.
  for (let i = 0; i < 20; i++) await one();
  const out = [];
  while ((!stop || out.length < min) && out.length < max && Date.now() - started < budget) out.push(await one());
  agent.destroy();
  process.stdout.write(JSON.stringify(out));
})();
`;

/**
 * Runs `attack` while another client (its own process) sends requests to the main route one
 * after another, and samples the daemon's RSS and descriptors meanwhile.
 */
async function underAttack(attack: () => Promise<unknown>): Promise<{ p99: number; maxRss: number; maxFds: number; samples: number; statuses: Set<number> }> {
  const client = spawn(process.execPath, ['-e', CLIENT, String(d.httpPort), MAIN, String(MIN_SAMPLES), String(MAX_SAMPLES), String(ATTACK_BUDGET_MS)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let output = '';
  client.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => client.once('exit', () => resolve()));
  let maxRss = 0;
  let maxFds = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxRss = Math.max(maxRss, await rssBytes(pid));
      maxFds = Math.max(maxFds, await openFds(pid));
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  try {
    await attack();
  } finally {
    client.stdin.end();
    await exited;
    sampling = false;
    await sampler;
  }
  const results = JSON.parse(output) as Array<[number, number]>;
  const sorted = results.map(([ms]) => ms).sort((x, y) => x - y);
  return { p99: sorted[Math.ceil(sorted.length * 0.99) - 1] ?? Infinity, maxRss, maxFds, samples: sorted.length, statuses: new Set(results.map(([, status]) => status)) };
}

/** The bounds of one attack, each its own counted case. */
async function checkBounds(name: string, result: Awaited<ReturnType<typeof underAttack>>): Promise<void> {
  await bounds.check(() => expect(result.statuses, `${name}: every request to the main route answered 200`).toEqual(new Set([200])));
  await bounds.check(() => expect(result.p99, `${name}: p99 of ${result.samples} requests`).toBeLessThan(P99_LIMIT_MS));
  await bounds.check(() => expect(result.maxRss - baseRss, `${name}: RSS growth (max ${(result.maxRss / 2 ** 20).toFixed(0)} MiB)`).toBeLessThan(RSS_GROWTH_LIMIT));
  await bounds.check(() => expect(result.maxFds - baseFds, `${name}: descriptor growth`).toBeLessThan(FD_GROWTH_LIMIT));
}

describe('committed and per-worktree files are read within bounds', () => {
  it('a committed devproxy.yaml symlink to /dev/zero is refused and named', async () => {
    commitBranch('zero-config', [{ name: 'devproxy.yaml', mode: '120000', content: '/dev/zero' }]);
    let path = '';
    const result = await underAttack(async () => {
      path = await addWorktree('zero-config');
      const message = await diagnosticOn(path, /symbolic link to \/dev\/zero, outside the worktree/);
      await files.check(() => expect(message).toContain('devproxy does not follow it'));
    });
    await checkBounds('devproxy.yaml → /dev/zero', result);
  });

  it('a profile.yaml symlink to /dev/zero is refused and named', async () => {
    commitBranch('zero-profile', [{ name: 'devproxy.yaml', mode: '100644', content: 'name: zp\nservices:\n  api: { remote: "http://x.localhost:1" }\nprofiles: { p: [] }\ndefault: p\n' }]);
    let path = '';
    const result = await underAttack(async () => {
      path = await addWorktree('zero-profile');
      await pollStatus(async () => ((await worktreeOf(path)) ? true : undefined), 'worktree tracked');
      await mkdir(join(path, '.devproxy'), { recursive: true });
      await symlink('/dev/zero', join(path, '.devproxy', 'profile.yaml'));
      await files.check(async () => expect(await diagnosticOn(path, /symbolic link to \/dev\/zero/)).toBeTruthy());
    });
    await checkBounds('profile.yaml → /dev/zero', result);
  });

  it('a symlink to a regular file outside the repository is not followed', async () => {
    const outside = join(d.repo.root, 'outside.yaml');
    await writeFile(outside, 'name: outside\nservices:\n  leaked: { remote: "http://x.localhost:1" }\nprofiles: { p: [leaked] }\ndefault: p\n');
    commitBranch('outside-link', [{ name: 'devproxy.yaml', mode: '120000', content: outside }]);
    const path = await addWorktree('outside-link');
    await files.check(async () => {
      expect(await diagnosticOn(path, /outside the worktree/)).toContain(outside);
      expect((await d.status()).worktrees.flatMap((w) => w.services.map((s) => s.name))).not.toContain('leaked');
    });
  });

  it('FIFOs as profile.yaml in five worktrees do not wedge the daemon: edits and new worktrees still apply', async () => {
    const paths: string[] = [];
    const result = await underAttack(async () => {
      for (let i = 0; i < 5; i++) {
        const path = await addWorktree(`fifo-${i}`, { create: true });
        paths.push(path);
        await pollStatus(async () => ((await worktreeOf(path)) ? true : undefined), 'worktree tracked');
        await mkdir(join(path, '.devproxy'), { recursive: true });
        await promisify(execFile)('mkfifo', [join(path, '.devproxy', 'profile.yaml')]);
      }
      for (const path of paths) await files.check(async () => expect(await diagnosticOn(path, /a FIFO \(named pipe\) stands where the file should be/)).toBeTruthy());
      // libuv has four file threads: a fifth worktree and a profile edit still go through.
      const fresh = await addWorktree('after-fifos', { create: true });
      await files.check(() => waitFor(async () => ((await d.get('api.after-fifos.localhost')).status === 200 ? true : undefined), ATTACK_BUDGET_MS, 'new worktree routed'));
      await mkdir(join(fresh, '.devproxy'), { recursive: true });
      await writeFile(join(fresh, '.devproxy', 'profile.yaml'), 'profile: nope\n');
      await files.check(async () => expect(await diagnosticOn(fresh, /nope/)).toBeTruthy());
    });
    await checkBounds('FIFO profile.yaml ×5', result);
  });

  it('a FIFO as devproxy.yaml is refused and named', async () => {
    const path = d.repo.addWorktree('fifo-config');
    await pollStatus(async () => ((await worktreeOf(path)) ? true : undefined), 'worktree tracked');
    await rm(join(path, 'devproxy.yaml'));
    execFileSync('mkfifo', [join(path, 'devproxy.yaml')]);
    await files.check(async () => expect(await diagnosticOn(path, /a FIFO \(named pipe\)/)).toBeTruthy());
  });

  it('a 10 MB devproxy.yaml of 200,000 keys is refused before parsing', async () => {
    const big = `name: big\nservices:\n  api: { remote: "http://x.localhost:1" }\nprofiles: { p: [] }\ndefault: p\n${Array.from({ length: 200_000 }, (_, i) => `unknown_key_${i}: ${'v'.repeat(30)}`).join('\n')}\n`;
    commitBranch('giant-yaml', [{ name: 'devproxy.yaml', mode: '100644', content: big }]);
    const result = await underAttack(async () => {
      const path = await addWorktree('giant-yaml');
      await files.check(async () => expect(await diagnosticOn(path, /devproxy reads at most 1048576 bytes/)).toBeTruthy());
    });
    await checkBounds('10 MB devproxy.yaml', result);
  });

  it('a 900 KB devproxy.yaml of 40,000 keys is refused by its entry count', async () => {
    const text = `name: many\n${Array.from({ length: 40_000 }, (_, i) => `k${i}: ${'v'.repeat(12)}`).join('\n')}\n`;
    commitBranch('many-keys', [{ name: 'devproxy.yaml', mode: '100644', content: text }]);
    const result = await underAttack(async () => {
      const path = await addWorktree('many-keys');
      await files.check(async () => expect(await diagnosticOn(path, /devproxy reads at most 20000/)).toBeTruthy());
    });
    await checkBounds('40,000-key devproxy.yaml', result);
  });

  it('a 15,000-key devproxy.yaml under the caps is parsed off the event loop, its warnings capped, and a good file applies after it', { timeout: 90_000 }, async () => {
    const head = `name: keys\nservices:\n  api: { remote: "http://api-dev.localhost:${upstream.port}" }\nprofiles: { p: [] }\ndefault: p\n`;
    const text = `${head}${Array.from({ length: 15_000 }, (_, i) => `unknown_key_${i}: 1`).join('\n')}\n`;
    commitBranch('keys-15k', [{ name: 'devproxy.yaml', mode: '100644', content: text }]);
    let path = '';
    const result = await underAttack(async () => {
      path = await addWorktree('keys-15k');
      await diagnosticOn(path, /more unknown keys are ignored|more problems like these/);
      const diagnostics = (await worktreeOf(path))!.diagnostics;
      await files.check(() => expect(diagnostics.length).toBeLessThanOrEqual(21));
      await writeFile(join(path, 'devproxy.yaml'), head);
      await files.check(() => pollStatus(async () => ((await worktreeOf(path))?.diagnostics.length === 0 ? true : undefined), 'good file applied'));
    });
    await checkBounds('15,000-key devproxy.yaml (worker parse)', result);
  });

  it('a newline in a worktree path is one worktree, not a fake entry for the folder before the newline', async () => {
    const decoy = join(d.repo.root, 'decoy');
    await mkdir(decoy);
    await writeFile(join(decoy, 'devproxy.yaml'), 'name: decoy\nservices:\n  evil: { remote: "http://x.localhost:1" }\nprofiles: { p: [evil] }\ndefault: p\n');
    const path = `${decoy}\nnl`;
    d.repo.git(['worktree', 'add', '-q', '-b', 'feature/newline', path]);
    await files.check(async () => {
      await waitFor(async () => ((await d.get('api.newline.localhost')).status === 200 ? true : undefined), ATTACK_BUDGET_MS, 'api.newline.localhost routed');
      const report = await d.status();
      expect(report.worktrees.map((w) => w.path)).toContain(path);
      expect(report.worktrees.map((w) => w.path)).not.toContain(decoy);
      expect((await d.get('evil.newline.localhost')).status).toBe(404);
    });
  });
});

/** How long a request to a route whose reference names a FIFO may take before the daemon counts as wedged. */
const WEDGE_LIMIT_MS = 15_000;

describe('files named by ${file:} references and ca: are read within bounds', () => {
  it('${file:/dev/zero} in a service env is refused and named; the daemon lives and keeps serving', { timeout: 60_000 }, async () => {
    const dead = await fixedPort();
    // A command service: the daemon resolves its env before starting it (a `port:` one it never starts).
    commitBranch('ref-zero-env', [{ name: 'devproxy.yaml', mode: '100644', content: `name: refzero\nservices:\n  app:\n    local: { command: "node -e 0", port: ${dead} }\n    env:\n      local: { LEAK: "\${file:/dev/zero}" }\nprofiles: { p: [app] }\ndefault: p\n` }]);
    let path = '';
    const result = await underAttack(async () => {
      path = await addWorktree('ref-zero-env');
      const problem = await pollStatus(async () => (await worktreeOf(path))?.services.find((s) => s.name === 'app' && s.problem?.message.includes('/dev/zero'))?.problem?.message, 'the env problem on app');
      await referenced.check(() => {
        expect(problem).toContain('${file:/dev/zero}');
        expect(problem).toContain('a character device, not a regular file');
      });
      await referenced.check(async () => expect((await d.get(MAIN)).status).toBe(200));
      await referenced.check(async () => expect((await d.cli(['status'])).code).toBe(0));
    });
    await checkBounds('${file:/dev/zero} in env', result);
  });

  it('a FIFO, /dev/zero, a folder or a large file named by an auth header or ca: is a 502 naming it; a small secret file still works', { timeout: 120_000 }, async () => {
    const echo = await startHttpUpstream();
    const dir = join(d.repo.root, 'ref-files');
    await mkdir(join(dir, 'folder'), { recursive: true });
    execFileSync('mkfifo', [join(dir, 'key.fifo'), join(dir, 'ca.fifo')]);
    await writeFile(join(dir, 'big.key'), 'k'.repeat(100 * 1024));
    await writeFile(join(dir, 'big-ca.pem'), 'c'.repeat(2 * 1024 * 1024));
    await writeFile(join(dir, 'good.key'), 's3cret\n');
    const remote = `http://127.0.0.1:${echo.port}`;
    const header = (file: string) => `{ url: "${remote}" }\n    auth: { headers: { x-api-key: "\${file:${file}}" } }`;
    const services: Record<string, string> = {
      fifo: header(join(dir, 'key.fifo')),
      zero: header('/dev/zero'),
      folder: header(join(dir, 'folder')),
      big: header(join(dir, 'big.key')),
      good: header(join(dir, 'good.key')),
      cafifo: `{ url: "${remote}", ca: "${join(dir, 'ca.fifo')}" }`,
      cazero: `{ url: "${remote}", ca: /dev/zero }`,
      cabig: `{ url: "${remote}", ca: "${join(dir, 'big-ca.pem')}" }`,
    };
    const config = `name: refs\nservices:\n${Object.entries(services).map(([name, value]) => `  ${name}:\n    remote: ${value}\n`).join('')}profiles: { p: [] }\ndefault: p\n`;
    commitBranch('ref-requests', [{ name: 'devproxy.yaml', mode: '100644', content: config }]);
    const expected: Array<[string, string, RegExp]> = [
      ['fifo', 'DEVPROXY_ERR_ENV_UNSET', /\$\{file:[^}]*key\.fifo\}.*a FIFO \(named pipe\), not a regular file/],
      ['zero', 'DEVPROXY_ERR_ENV_UNSET', /\$\{file:\/dev\/zero\}.*a character device, not a regular file/],
      ['folder', 'DEVPROXY_ERR_ENV_UNSET', /\$\{file:[^}]*folder\}.*a directory, not a regular file/],
      ['big', 'DEVPROXY_ERR_ENV_UNSET', /\$\{file:[^}]*big\.key\}.*102400 bytes; devproxy reads at most 65536/],
      ['cafifo', 'DEVPROXY_ERR_UPSTREAM_TLS', /the CA file [^ ]*ca\.fifo is a FIFO \(named pipe\), not a regular file/],
      ['cazero', 'DEVPROXY_ERR_UPSTREAM_TLS', /the CA file \/dev\/zero is a character device, not a regular file/],
      ['cabig', 'DEVPROXY_ERR_UPSTREAM_TLS', /the CA file [^ ]*big-ca\.pem is 2097152 bytes; devproxy reads at most 1048576/],
    ];
    try {
      const result = await underAttack(async () => {
        await addWorktree('ref-requests');
        await waitFor(async () => ((await d.get('good.ref-requests.localhost')).status === 200 ? true : undefined), ATTACK_BUDGET_MS, 'good.ref-requests.localhost routed');
        for (const [service, code, message] of expected) {
          await referenced.check(async () => {
            const answer = await within(d.get(`${service}.ref-requests.localhost`), WEDGE_LIMIT_MS, `the answer of ${service}`);
            expect(answer.status, answer.body).toBe(502);
            const error = (JSON.parse(answer.body) as { error: { code: string; message: string; hint: string } }).error;
            expect(error.code).toBe(code);
            expect(error.message).toMatch(message);
            expect(error.hint.length).toBeGreaterThan(0);
          });
        }
        await referenced.check(async () => {
          const answer = await d.get('good.ref-requests.localhost');
          expect((JSON.parse(answer.body) as { headers: Record<string, string> }).headers['x-api-key']).toBe('s3cret');
        });
        await referenced.check(async () => expect((await d.get(MAIN)).status).toBe(200));
        await referenced.check(async () => expect((await within(d.cli(['status']), WEDGE_LIMIT_MS, '`devproxy status`')).code).toBe(0));
      });
      await checkBounds('${file:} and ca: files at request time', result);
    } finally {
      await echo.close();
    }
  });
});

describe('a committed compose file that is no regular file', () => {
  const composeService = (name: string, port: number) => `name: ${name}\nservices:\n  web:\n    local: { compose: web, port: ${port} }\nprofiles: { p: [web] }\ndefault: p\n`;

  for (const [kind, target, message] of [
    ['a FIFO', 'compose.fifo', 'is a FIFO (named pipe), not a regular file'],
    ['/dev/zero', '/dev/zero', 'is a character device, not a regular file'],
  ] as const) {
    it(`linked to ${kind}, it is refused and named on the route while the daemon keeps serving`, async () => {
      const linked = target.startsWith('/') ? target : join(d.repo.root, target);
      if (!target.startsWith('/')) execFileSync('mkfifo', [linked]);
      const branch = `compose-${target.startsWith('/') ? 'zero' : 'fifo'}`;
      commitBranch(branch, [
        { name: 'devproxy.yaml', mode: '100644', content: composeService(branch, await fixedPort()) },
        { name: 'compose.yaml', mode: '120000', content: linked },
      ]);
      let path = '';
      const result = await underAttack(async () => {
        path = await addWorktree(branch);
        const problem = await pollStatus(async () => (await worktreeOf(path))?.services.find((s) => s.name === 'web' && s.problem?.message.includes('compose.yaml'))?.problem?.message, 'the compose problem on web');
        await composeFiles.check(() => expect(problem).toContain(`the compose file ${join(path, 'compose.yaml')} ${message}`));
        await composeFiles.check(async () => expect((await d.get(MAIN)).status).toBe(200));
        await composeFiles.check(async () => expect((await within(d.cli(['status']), WEDGE_LIMIT_MS, '`devproxy status`')).code).toBe(0));
      });
      await checkBounds(`compose.yaml → ${kind}`, result);
    });
  }
});

/** Nine levels of nine aliases: 460 bytes that expand to 9^9 strings (security review finding 6). */
const ALIAS_BOMB = `services:\n  web: { image: x }\na0: &a0 [${Array(9).fill('"lol"').join(',')}]\n${Array.from({ length: 8 }, (_, i) => `a${i + 1}: &a${i + 1} [${Array(9).fill(`*a${i}`).join(',')}]`).join('\n')}\n`;

describe('a compose file of nested aliases (a "billion laughs")', () => {
  it('is refused and named on the route while the daemon keeps serving', async () => {
    const dead = await fixedPort();
    commitBranch('compose-bomb', [
      { name: 'devproxy.yaml', mode: '100644', content: `name: bomb\nservices:\n  web:\n    local: { compose: web, port: ${dead} }\nprofiles: { p: [web] }\ndefault: p\n` },
      { name: 'compose.yaml', mode: '100644', content: ALIAS_BOMB },
    ]);
    let path = '';
    const result = await underAttack(async () => {
      path = await addWorktree('compose-bomb');
      const problem = await pollStatus(async () => (await worktreeOf(path))?.services.find((s) => s.name === 'web' && s.problem?.message.includes('compose.yaml'))?.problem?.message, 'the compose problem on web');
      await composeFiles.check(() => expect(problem).toContain(`${join(path, 'compose.yaml')} expands to more than ${MAX_COMPOSE_EXPANDED_SIZE}`));
      await composeFiles.check(async () => expect((await d.get(MAIN)).status).toBe(200));
      await composeFiles.check(async () => expect((await within(d.cli(['status']), WEDGE_LIMIT_MS, '`devproxy status`')).code).toBe(0));
    });
    await checkBounds('compose alias bomb', result);
  });

  it('is refused by the loader, as are 1,001 aliases, a recursive anchor and a bomb of sets, each naming the file', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['bomb', ALIAS_BOMB, new RegExp(`expands to more than ${MAX_COMPOSE_EXPANDED_SIZE} values and characters`)],
      ['many', `x: &x 1\nservices:\n  web:\n    image: x\n    labels: [${Array(MAX_COMPOSE_ALIASES + 1).fill('*x').join(', ')}]\n`, new RegExp(`holds ${MAX_COMPOSE_ALIASES + 1} aliases; devproxy reads at most ${MAX_COMPOSE_ALIASES}`)],
      ['recursive', 'services:\n  web: { image: x }\nloop: &loop [1, *loop]\n', /holds an alias inside the node it names/],
      // The same bomb through `!!set`, which the YAML library turns into a Set rather than an object.
      ['set', `services:\n  web: { image: x }\na0: &a0 [${Array(9).fill('"lol"').join(',')}]\n${Array.from({ length: 8 }, (_, i) => `a${i + 1}: &a${i + 1} !!set {${Array.from({ length: 9 }, (_, j) => `? [${j}, *a${i}]`).join(', ')}}`).join('\n')}\n`, /expands to more than/],
    ];
    for (const [name, text, message] of cases) {
      const file = join(d.repo.root, `${name}.compose.yaml`);
      await writeFile(file, text);
      await composeFiles.check(async () => {
        const refused = await readComposeFile(file).then(() => undefined, (error: unknown) => error as { code: string; message: string; hint: string });
        expect(refused?.code, name).toBe('DEVPROXY_ERR_COMPOSE_FAILED');
        expect(refused?.message).toMatch(message);
        expect(refused?.message.startsWith(file)).toBe(true);
        expect(refused?.hint).toContain('anchors');
      });
    }
  });

  it('a compose file that shares settings through anchors and merge keys still loads', async () => {
    const file = join(d.repo.root, 'anchors.compose.yaml');
    await writeFile(file, `x-base: &base\n  image: busybox\n  environment: { A: "1" }\nservices:\n${Array.from({ length: 50 }, (_, i) => `  s${i}:\n    <<: *base\n    command: [sh, -c, "echo ${i}"]`).join('\n')}\n`);
    await composeFiles.check(async () => {
      const loaded = await readComposeFile(file);
      expect(loaded.services).toHaveLength(50);
      expect((loaded.doc.services as Record<string, { image: string }>).s49!.image).toBe('busybox');
    });
  });
});

describe('a worktree deleted with rm -rf', () => {
  it('is unrouted, with a diagnostic naming `git worktree prune`', async () => {
    const path = d.repo.addWorktree('rmrf');
    await waitFor(async () => ((await d.get('api.rmrf.localhost')).status === 200 ? true : undefined), ATTACK_BUDGET_MS, 'api.rmrf.localhost routed');
    await rm(path, { recursive: true, force: true });
    await gone.check(() => waitFor(async () => ((await d.get('api.rmrf.localhost')).status === 404 ? true : undefined), ATTACK_BUDGET_MS, 'api.rmrf.localhost unrouted'));
    await gone.check(async () => {
      const diagnostic = (await d.status()).diagnostics.find((x) => x.file === path);
      expect(diagnostic?.message).toMatch(/the worktree folder is gone/);
      expect(diagnostic?.hint).toContain('git worktree prune');
    });
    d.repo.git(['worktree', 'prune']);
    await gone.check(() => waitFor(async () => ((await d.status()).diagnostics.some((x) => x.file === path) ? undefined : true), ATTACK_BUDGET_MS, 'diagnostic gone after prune'));
  });

  it('POST /api/reload rebuilds the table, not only the file list', async () => {
    const path = d.repo.addWorktree('reload-me');
    await waitFor(async () => ((await d.get('api.reload-me.localhost')).status === 200 ? true : undefined), ATTACK_BUDGET_MS, 'routed');
    // Changed behind the watchers' back: moved within the same git data, then reloaded.
    await rm(path, { recursive: true, force: true });
    const info = (await d.info())!;
    const reloaded = await fetch(`http://127.0.0.1:${info.adminPort}/api/reload`, { method: 'POST', headers: { authorization: `Bearer ${info.token}` } });
    await gone.check(async () => {
      expect(reloaded.status).toBe(200);
      const report = (await reloaded.json()) as StatusReport;
      expect(report.worktrees.map((w) => w.path)).not.toContain(path);
      expect(report.diagnostics.some((x) => x.file === path && x.hint.includes('git worktree prune'))).toBe(true);
    });
  });
});

describe('many worktrees removed at once', () => {
  it(`${STORM_WORKTREES} worktrees deleted together are each removed at most once`, async () => {
    const paths: string[] = [];
    for (let i = 0; i < STORM_WORKTREES; i++) paths.push(d.repo.addWorktree(`storm-${i}`));
    await waitFor(async () => {
      const known = new Set((await d.status()).worktrees.map((w) => w.path));
      return paths.every((p) => known.has(p)) ? true : undefined;
    }, 60_000, 'every storm worktree tracked');
    const logFile = join(d.home, 'logs', 'daemon.log');
    const logStart = (await readFile(logFile, 'utf8')).length;
    const removals = async () => (await readFile(logFile, 'utf8')).slice(logStart).split('\n').filter((l) => l.includes('the worktree is gone; its local services are stopped'));
    for (const p of paths) await rm(p, { recursive: true, force: true });
    d.repo.git(['worktree', 'prune']);
    await waitFor(async () => {
      const known = new Set((await d.status()).worktrees.map((w) => w.path));
      return paths.some((p) => known.has(p)) ? undefined : true;
    }, 60_000, 'every storm worktree unrouted');
    // A storm shows as more removals arriving after the first round: wait for a quiet second.
    let previous = -1;
    await waitFor(async () => {
      const count = (await removals()).length;
      if (count > 0 && count === previous) return true;
      previous = count;
      await new Promise((r) => setTimeout(r, 1_000));
      return undefined;
    }, 30_000, 'removals settled');
    const lines = await removals();
    for (const p of paths) {
      // A worktree the runtime had not reconciled yet needs no removal: at most one each.
      await storm.check(() => expect(lines.filter((l) => l.includes(`${p}: the worktree is gone`)).length, `removals of ${p}`).toBeLessThanOrEqual(1));
    }
    await storm.check(() => expect(lines.length, 'removals logged').toBeGreaterThan(0));
    await storm.check(async () => expect((await d.get(MAIN)).status).toBe(200));
  }, 180_000);
});
