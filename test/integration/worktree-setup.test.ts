/**
 * `setup:` and honest exit codes through the real CLI and daemon, with real git, real npm and
 * real processes (no Docker): a failing set-up step stops `new` with the step's own error (not
 * npm's usage text) and leaves the worktree locked for `devproxy setup`; a service that exits at
 * once and one that listens on another port than PORT make `new` exit 1 with the cause.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusReport } from '../../workspace/status.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, type TempRepo } from '../helpers/git-repo.js';

let home: string;
let repo: TempRepo;
let env: NodeJS.ProcessEnv;
let httpPort: number;
const cli = (args: string[], cwd = repo.main) => runCli(args, { cwd, env, timeoutMs: 120_000 });

/** A lock file for a package without dependencies: `npm ci --offline` succeeds with it, and fails without. */
const LOCK = JSON.stringify({ name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'app', version: '1.0.0' } } });

/** The web service: answers with the GREETING of the copied .env and the file the set-up step wrote. */
const SERVER = `const http = require('http');
const fs = require('fs');
const greeting = /GREETING=(.*)/.exec(fs.readFileSync('../.env', 'utf8'))[1];
http.createServer((req, res) => res.end(req.url === '/health' ? 'ok' : greeting + ' / ' + fs.readFileSync('prepared.txt', 'utf8'))).listen(Number(process.env.PORT), '127.0.0.1');
`;

function get(host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: httpPort, path: '/', headers: { host, accept: 'application/json' }, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ status: -1, body: String(error) }));
    req.end();
  });
}

async function status(): Promise<StatusReport> {
  const result = await cli(['status', '--json', '--no-probe']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as StatusReport;
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-setup-home-'));
  repo = await createTempRepo({
    '.gitignore': '.env\nconfig/*.local.json\n',
    'devproxy.yaml': `name: setupt
setup:
  copy: [.env, "config/*.local.json", "missing/*.txt"]
  run:
    - npm ci --offline --no-audit --no-fund --prefix app
    - node -e "require('fs').writeFileSync('app/prepared.txt', 'prepared from ' + require('fs').readFileSync('config/db.local.json', 'utf8').trim())"
services:
  web:
    local: { command: "node server.js", cwd: app }
    health: { path: /health, timeout: 30s }
  crash:
    local: { command: "node -e \\"console.log('connecting'); console.error('Error: cannot reach the database at db.local:5432'); process.exit(3)\\"" }
  wrongport:
    local: { command: "node -e \\"const s = require('http').createServer((q, r) => r.end('hi')).listen(0, '127.0.0.1', () => console.log('listening on ' + s.address().port))\\"" }
    health: { timeout: 30s }
profiles:
  minimal: [web]
  crashy: [web, crash]
  wrong: [web, wrongport]
default: minimal
`,
  });
  await mkdir(join(repo.main, 'app'));
  await writeFile(join(repo.main, 'app', 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  await writeFile(join(repo.main, 'app', 'server.js'), SERVER);
  repo.git(['add', '.']);
  repo.git(['commit', '-q', '-m', 'app without a lock file']);
  // Git-ignored files of the main checkout that a fresh worktree lacks.
  await writeFile(join(repo.main, '.env'), 'GREETING=hello from the main .env\n');
  await mkdir(join(repo.main, 'config'));
  await writeFile(join(repo.main, 'config', 'db.local.json'), '{"db":"local"}\n');
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
  const started = await cli(['proxy', 'start', '--json']);
  expect(started.code, started.stderr).toBe(0);
  httpPort = (JSON.parse(started.stdout) as { httpPort: number }).httpPort;
}, 120_000);

afterAll(async () => {
  for (const name of ['one', 'two', 'three']) await cli(['rm', name, '--force']);
  await cli(['proxy', 'stop', '--all']);
  await repo?.cleanup();
  await rm(home, { recursive: true, force: true });
}, 120_000);

describe('worktree set-up and honest exit codes', { timeout: 150_000 }, () => {
  const one = () => join(`${repo.main}.worktrees`, 'one');

  it('a failing setup step stops new with its own error, not npm usage text; no service starts; the worktree stays', async () => {
    const result = await cli(['new', 'feature/one']);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toContain('setup: copied .env');
    expect(result.stdout).toContain('setup: copied config/db.local.json');
    expect(result.stdout).toContain('warning: setup.copy "missing/*.txt" matches no file');
    expect(result.stdout).toContain('setup 1/2: npm ci --offline --no-audit --no-fund --prefix app …');
    expect(result.stderr).toMatch(/error: setup step 1\/2 `npm ci --offline --no-audit --no-fund --prefix app` exited with code 1 after \d+\.\d s:/);
    expect(result.stderr).toContain('The `npm ci` command can only install with an existing package-lock.json');
    expect(result.stderr).not.toContain('--install-strategy');
    expect(result.stderr).toContain(`devproxy setup -C ${one()}`);
    expect(result.stdout).not.toContain('setup 2/2');
    expect(await readFile(join(one(), '.env'), 'utf8')).toBe('GREETING=hello from the main .env\n');
    expect(repo.git(['worktree', 'list', '--porcelain'])).toContain('locked devproxy: setup pending');
    // The daemon routes the worktree but runs nothing of it, and says why.
    const worktree = (await status()).worktrees.find((w) => w.path === one());
    expect(worktree?.services.find((s) => s.name === 'web')).toMatchObject({ problem: { message: expect.stringContaining('is not set up yet') } });
    expect(worktree?.services.find((s) => s.name === 'web')?.runtime).toBeUndefined();
    const page = await get('web.one.localhost');
    expect(page.status).toBe(502);
    expect(page.body).toContain('devproxy setup');
  });

  it('devproxy setup retries after the fix, keeps the copied files, and starts the services', async () => {
    await writeFile(join(one(), '.env'), 'GREETING=edited in the worktree\n');
    await writeFile(join(one(), 'app', 'package-lock.json'), LOCK);
    const result = await cli(['setup'], one());
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('setup: kept .env (it exists in the worktree)');
    expect(result.stdout).toMatch(/setup 1\/2: done in \d+\.\d s/);
    expect(result.stdout).toMatch(/setup 2\/2: done in \d+\.\d s/);
    expect(result.stdout).toMatch(/web\s+healthy \(\d+\.\d s\)/);
    expect(repo.git(['worktree', 'list', '--porcelain'])).not.toContain('locked');
    expect(await get('web.one.localhost')).toEqual({ status: 200, body: 'GREETING=edited in the worktree'.slice('GREETING='.length) + ' / prepared from {"db":"local"}' });
    expect(await readFile(join(home, 'logs', 'one-setup.log'), 'utf8')).toContain('EUSAGE');
  });

  it('a service that exits at once makes new exit 1 with the line that says why', async () => {
    await writeFile(join(repo.main, 'app', 'package-lock.json'), LOCK);
    repo.git(['add', 'app/package-lock.json']);
    repo.git(['commit', '-q', '-m', 'lock file']);
    const result = await cli(['new', 'feature/two', '--profile', 'crashy', '--json']);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    const out = JSON.parse(result.stdout) as { failures: Array<{ service: string; state: string; detail: string; cause: string[] }> };
    expect(out.failures).toEqual([{ service: 'crash', state: 'failed', detail: expect.stringContaining('exited with code 3'), cause: ['Error: cannot reach the database at db.local:5432'] }]);
    expect(result.stderr).toMatch(/error: crash failed: `node -e .*` exited with code 3 \(worktree two\)/);
    expect(result.stderr).toContain('devproxy restart crash');
    const human = await cli(['restart', 'crash'], join(`${repo.main}.worktrees`, 'two'));
    expect(human.code).toBe(1);
    expect(human.stdout).toContain('│ Error: cannot reach the database at db.local:5432');
  });

  it('a service listening on another port than PORT: new exits 1 naming both ports, and status and the 502 page say so', async () => {
    const three = join(`${repo.main}.worktrees`, 'three');
    const result = await cli(['new', 'feature/three', '--profile', 'wrong']);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    const match = /wrongport listens on (\d+), not on PORT=(\d+): start it with \$PORT/.exec(result.stderr);
    expect(match, result.stderr).not.toBeNull();
    const log = await readFile(join(home, 'logs', 'three-wrongport.log'), 'utf8');
    expect(log).toContain(`listening on ${match![1]}`);
    expect(log).toContain(`with PORT=${match![2]}`);
    expect(match![1]).not.toBe(match![2]);
    expect(result.stdout).toMatch(/web\s+healthy/);
    const service = (await status()).worktrees.find((w) => w.path === three)?.services.find((s) => s.name === 'wrongport');
    expect(service?.problem?.message).toContain(`wrongport listens on ${match![1]}, not on PORT=${match![2]}`);
    const page = await get('wrongport.three.localhost');
    expect(page.status).toBe(502);
    expect(page.body).toContain(`wrongport listens on ${match![1]}, not on PORT=${match![2]}`);
  });
});
