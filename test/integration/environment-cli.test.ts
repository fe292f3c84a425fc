import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTS_BLOCK_END, HOSTS_BLOCK_START, renderBlock } from '../../environment/hosts-file.js';
import { CLI, runCli, type CliResult } from '../helpers/cli.js';
import { createTempRepo, type TempRepo } from '../helpers/git-repo.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { letUnprivilegedReachProject, UNPRIVILEGED } from '../helpers/unprivileged.js';

/**
 * Apps outside the browser, end to end: the real CLI and daemon as subprocesses, a git
 * repository with a worktree, a "local" and a "remote" upstream. On this machine plain Node
 * cannot resolve `*.localhost` (glibc has no nss-myhostname here), which the preload must fix.
 */
let home: string;
let scratch: string;
let repo: TempRepo;
let feature: string;
let localApi: Upstream;
let remoteApi: Upstream;
let env: NodeJS.ProcessEnv;
let httpPort: number;

const SECRET = 'AccountEndpoint=https://contoso-dev.documents.azure.com/;AccountKey=s3cret==';
const cli = (args: string[], cwd = feature, extraEnv: NodeJS.ProcessEnv = {}) => runCli(args, { cwd, env: { ...env, ...extraEnv } });

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-env-home-'));
  scratch = await mkdtemp(join(tmpdir(), 'devproxy-env-scratch-'));
  localApi = await startHttpUpstream((_req, res) => res.end('api local'));
  remoteApi = await startHttpUpstream((_req, res) => res.end('api remote'));
  repo = await createTempRepo({
    'devproxy.yaml': `name: contoso
services:
  api:
    local: { port: ${localApi.port} }
    remote: http://127.0.0.1:${remoteApi.port}
  cosmos:
    local: { port: 1 }
    remote: http://127.0.0.1:1
    env:
      url: false
      local: { COSMOS_CONNECTION: "AccountEndpoint=https://localhost:8081/;AccountKey=local" }
      remote: { COSMOS_CONNECTION: "\${env:DEVPROXY_TEST_COSMOS}" }
profiles:
  minimal: []
  standard: [api]
default: minimal
`,
  });
  feature = repo.addWorktree('feature/env-test');
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0', DEVPROXY_TEST_COSMOS: SECRET };
  delete env.NODE_OPTIONS;
  expect((await cli(['init'], repo.main)).code).toBe(0);
  const started = await cli(['proxy', 'start', '--json'], repo.main);
  expect(started.code, started.stderr).toBe(0);
  httpPort = (JSON.parse(started.stdout) as { httpPort: number }).httpPort;
});

afterAll(async () => {
  await cli(['proxy', 'stop', '--all'], repo.main);
  await Promise.all([localApi.close(), remoteApi.close()]);
  await repo.cleanup();
  await rm(home, { recursive: true, force: true });
  await rm(scratch, { recursive: true, force: true });
});

/** The client an app would be: plain fetch of API_URL, no flags, printing each new body once. */
const CLIENT = `
const seen = [];
for (let i = 0; i < 4000 && seen.length < 2; i++) {
  const body = await (await fetch(process.env.API_URL + '/items')).text();
  if (body !== seen.at(-1)) { seen.push(body); console.log(body); }
  await new Promise((r) => setTimeout(r, 5));
}
process.exit(seen.length === 2 ? 0 : 9);
`;

describe('devproxy run', () => {
  it('a Node client using plain fetch reaches the stable URL and follows a profile flip without restarting', async () => {
    expect((await cli(['use', 'standard'])).code).toBe(0);
    const script = join(scratch, 'client.mjs');
    await writeFile(script, CLIENT);
    const child = spawn(process.execPath, [CLI, 'run', '--', process.execPath, script], { cwd: feature, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    try {
      const first = await lines.next();
      expect(first.value, stderr).toBe('api local');
      const flipped = await cli(['use', 'minimal']);
      expect(flipped.code, flipped.stderr).toBe(0);
      expect((await lines.next()).value).toBe('api remote');
      expect(await exited).toBe(0);
    } finally {
      child.kill();
    }
  });

  it('passes the environment, the working folder and the exit code through', async () => {
    const result = await cli(['run', '--worktree', 'env-test', '-C', feature, '--', process.execPath, '-e', 'console.log(JSON.stringify({ api: process.env.API_URL, cosmos: process.env.COSMOS_CONNECTION, cwd: process.cwd(), opts: process.env.NODE_OPTIONS })); process.exit(7)'], repo.main, {
      NODE_OPTIONS: '--no-warnings',
    });
    expect(result.code, result.stderr).toBe(7);
    const seen = JSON.parse(result.stdout) as Record<string, string>;
    expect(seen).toMatchObject({ api: `http://api.env-test.localhost:${httpPort}`, cosmos: SECRET, cwd: feature });
    expect(seen.opts).toMatch(/^--no-warnings --import file:\/\/\/.+\/dist\/environment\/localhost-preload\.js$/);
  });

  it('passes SIGTERM on to the command and exits with 128 + its number', async () => {
    const child = spawn(process.execPath, [CLI, 'run', '--', process.execPath, '-e', "console.log('ready'); setInterval(() => {}, 1000)"], { cwd: feature, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    try {
      expect((await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next()).value).toBe('ready');
      child.kill('SIGTERM');
      expect(await exited).toBe(143);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses a reference to an unset variable, naming it, and starts nothing', async () => {
    const marker = join(scratch, 'should-not-exist');
    const result = await cli(['run', '--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(marker)}, '')`], feature, { DEVPROXY_TEST_COSMOS: '' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('error: COSMOS_CONNECTION (services.cosmos.env.remote) needs the environment variable DEVPROXY_TEST_COSMOS, which is not set');
    expect(result.stderr).toContain('change services.cosmos.env.remote.COSMOS_CONNECTION in devproxy.yaml');
    await expect(stat(marker)).rejects.toThrow(/ENOENT/);
  });

  it('names a command that cannot be started', async () => {
    const result = await cli(['run', '--', 'devproxy-no-such-command-xyz']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('error: cannot run "devproxy-no-such-command-xyz" (ENOENT)');
  });
});

describe('devproxy env', () => {
  it('prints a data service reference unresolved, resolves it only on request, and notes the flip', async () => {
    const shown = await cli(['env']);
    expect(shown.stdout).toContain("COSMOS_CONNECTION='${env:DEVPROXY_TEST_COSMOS}'\n");
    expect(shown.stdout).not.toContain('s3cret');
    expect(shown.stderr).toContain('note: switching cosmos between local and remote changes COSMOS_CONNECTION');
    expect(JSON.parse((await cli(['env', '--resolve', '--format', 'json'])).stdout)).toMatchObject({ COSMOS_CONNECTION: SECRET });
    await cli(['use', 'minimal', '--service', 'cosmos=local']);
    expect((await cli(['env'])).stdout).toContain('COSMOS_CONNECTION=AccountEndpoint=https://localhost:8081/;AccountKey=local\n');
    await cli(['use', 'minimal']);
  });

  it('--write writes the resolved dotenv file in the worktree, private and git-ignored', async () => {
    const result = await cli(['env', '--write']);
    expect(result.code, result.stderr).toBe(0);
    const file = join(feature, '.env.devproxy');
    expect(result.stdout).toContain(`wrote ${file}`);
    const text = await readFile(file, 'utf8');
    expect(text).toContain(`API_URL=http://api.env-test.localhost:${httpPort}\n`);
    expect(text).toContain(`COSMOS_CONNECTION=${SECRET}\n`);
    expect(text).toMatch(/^# Written by `devproxy env --write` for worktree env-test \(profile minimal\)/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(repo.git(['status', '--porcelain'], feature)).toBe('');

    expect((await cli(['env', '--write'])).code).toBe(0);
    const exclude = await readFile(join(repo.main, '.git', 'info', 'exclude'), 'utf8');
    expect(exclude.split('\n').filter((l) => l === '/.env.devproxy')).toHaveLength(1);
    // The common exclude file covers the main checkout too.
    expect((await cli(['env', '--write'], repo.main)).code).toBe(0);
    expect(repo.git(['status', '--porcelain'], repo.main)).toBe('');
  });

  it('--write FILE --format json writes that file', async () => {
    const result = await cli(['env', '--write', 'config/dev.json', '--format', 'json']);
    expect(result.code, result.stderr).toBe(0);
    const values = JSON.parse(await readFile(join(feature, 'config', 'dev.json'), 'utf8')) as Record<string, string>;
    expect(values.COSMOS_CONNECTION).toBe(SECRET);
    expect(repo.git(['status', '--porcelain'], feature)).toBe('');
  });

  it('--write refuses an unset reference and leaves no file', async () => {
    const result = await cli(['env', '--write', 'unset.env'], feature, { DEVPROXY_TEST_COSMOS: '' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('needs the environment variable DEVPROXY_TEST_COSMOS');
    await expect(stat(join(feature, 'unset.env'))).rejects.toThrow(/ENOENT/);
  });
});

describe('devproxy hosts', () => {
  const SYSTEM = '127.0.0.1\tlocalhost\r\n# user comment\r\n10.0.0.5 build-server';
  const ROUTED = ['api.contoso.localhost', 'api.env-test.localhost', 'cosmos.contoso.localhost', 'cosmos.env-test.localhost'];

  it('sync writes every routed hostname in its block, updates it, and clean restores the file byte for byte', async () => {
    const file = join(scratch, 'hosts');
    await writeFile(file, SYSTEM);
    await chmod(file, 0o640);

    const synced = await cli(['hosts', 'sync', '--file', file, '--json']);
    expect(synced.code, synced.stderr).toBe(0);
    expect(JSON.parse(synced.stdout)).toMatchObject({ changed: true, hosts: ROUTED });
    expect(await readFile(file, 'utf8')).toBe(`${SYSTEM}\r\n${renderBlock(ROUTED, '\r\n')}`);
    expect((await stat(file)).mode & 0o777).toBe(0o640);

    const again = await cli(['hosts', 'sync', '--file', file]);
    expect(again.stdout).toContain('(already up to date, not written)');

    const stale = `${SYSTEM}\r\n${renderBlock(['gone.contoso.localhost'], '\r\n')}\r\n# after\r\n`;
    await writeFile(file, stale);
    expect((await cli(['hosts', 'sync', '--file', file])).code).toBe(0);
    expect(await readFile(file, 'utf8')).toBe(`${SYSTEM}\r\n${renderBlock(ROUTED, '\r\n')}\r\n# after\r\n`);

    await writeFile(file, `${SYSTEM}\r\n${renderBlock(ROUTED, '\r\n')}`);
    const cleaned = await cli(['hosts', 'clean', '--file', file]);
    expect(cleaned.code, cleaned.stderr).toBe(0);
    expect(await readFile(file, 'utf8')).toBe(SYSTEM);
  });

  it('explains the one command to run when the file or its folder is not writable, and changes nothing', async () => {
    // root may write anything: run the CLI as `nobody` then, as an ordinary user would be.
    const asRoot = UNPRIVILEGED.uid !== undefined;
    const restore = await letUnprivilegedReachProject();
    const openDir = join(scratch, 'open-dir');
    await mkdir(openDir);
    await chmod(openDir, 0o777);
    const lockedDir = join(scratch, 'ro-dir');
    await mkdir(lockedDir);
    const content = `127.0.0.1 localhost\n${HOSTS_BLOCK_START}\n127.0.0.1 stale.localhost\n${HOSTS_BLOCK_END}\n`;
    const cases = [join(openDir, 'hosts'), join(lockedDir, 'hosts')];
    await writeFile(cases[0]!, content, { mode: 0o644 });
    await chmod(cases[0]!, asRoot ? 0o644 : 0o444);
    await writeFile(cases[1]!, content, { mode: 0o666 });
    await chmod(cases[1]!, 0o666);
    await chmod(lockedDir, 0o555);
    await chmod(scratch, 0o755);
    // A home of its own that nobody can read: no registry, so sync finds no hostnames and must remove the block.
    const ownHome = join(scratch, 'home');
    await mkdir(ownHome);
    await chmod(ownHome, 0o755);
    try {
      for (const file of cases) {
        for (const action of ['sync', 'clean']) {
          const result = await runAs(ownHome, ['hosts', action, '--file', file]);
          expect(result.code, `${file}: ${result.stderr}`).toBe(1);
          expect(result.stderr).toContain(`error: cannot write ${file} (EACCES): changing the hosts file needs administrator rights`);
          expect(result.stderr).toContain(`run: sudo env DEVPROXY_HOME=${ownHome} ${process.execPath} ${CLI} hosts ${action} --file ${file}`);
          expect(await readFile(file, 'utf8')).toBe(content);
        }
      }
    } finally {
      await chmod(lockedDir, 0o755);
      await restore();
    }
  });
});

/** The CLI as `nobody` when the tests run as root (which may write anything), else as ourselves. */
function runAs(devproxyHome: string, args: string[]): Promise<CliResult> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], { cwd: '/', env: { ...env, DEVPROXY_HOME: devproxyHome }, timeout: 30_000, ...UNPRIVILEGED }, (error, stdout, stderr) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}
