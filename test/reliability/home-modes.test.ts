/**
 * Regression: a `$DEVPROXY_HOME` that `devproxy proxy start` or `devproxy new` created was
 * readable by every local user (home and logs/ 0755, daemon.log, service logs, state files and
 * the derived compose file 0644), and the derived compose file holds the resolved `${env:…}`
 * values of the worktree's environment. `init` made the home 0700 and the security suite's home
 * comes from mkdtemp (0700 too), so nothing saw it. Here the product creates the home itself,
 * at a path whose parent does not exist yet, runs a compose service and a process service whose
 * environment carries a secret (real CLI, daemon, git, Docker engine), and every folder and file
 * of the home is checked, after the secret was shown to be in the files that must hide it.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';
import { ensureDockerEngine, removeRepoContainers, removeScopedNetworks, runScoped, TEST_IMAGE } from '../setup/docker-engine.js';

const SECRET = 'home-modes-secret-4c7e1a';
/** Files that are public by design: the CA certificate users import into trust stores (its folder is 0700). */
const PUBLIC_FILES = new Set(['certs/ca.pem']);

let docker: Docker;
let scratch: string;
const repos: Array<{ repo: TempRepo; project: string; home: string }> = [];

/** A repository whose compose service and process service both get SECRET through `${env:…}`; `setup:` writes a setup log. */
async function secretRepo(base: string): Promise<TempRepo> {
  const project = runScoped(base);
  const repo = await createTempRepo({
    // stop_signal: busybox as PID 1 ignores SIGTERM, so each stop would wait out the grace period.
    'compose.yaml': JSON.stringify({ version: '2.4', services: { web: { image: TEST_IMAGE, stop_signal: 'SIGKILL', command: ['sh', '-c', 'mkdir -p /www && echo web > /www/index.html && exec busybox httpd -f -p 3000 -h /www'] } } }),
    'devproxy.yaml': JSON.stringify({
      name: project,
      setup: { run: ['echo prepared'] },
      services: {
        web: { local: { compose: 'web', port: 3000 }, health: '/', env: { local: { WEB_API_KEY: '${env:HOME_MODES_SECRET}' } } },
        job: {
          local: { command: `echo "job sees $WEB_API_KEY"; exec node -e "require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT, '127.0.0.1')"` },
          health: '/',
        },
      },
      profiles: { both: ['web', 'job'] },
      default: 'both',
    }),
  });
  repos.push({ repo, project, home: '' });
  return repo;
}

function envFor(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0', HOME_MODES_SECRET: SECRET };
  delete env.NODE_OPTIONS;
  return env;
}

/** Every folder and file under `home` with its permission bits, relative paths, folders ending in `/`. */
async function modesUnder(home: string): Promise<Record<string, string>> {
  const out: Record<string, string> = { './': ((await stat(home)).mode & 0o777).toString(8) };
  for (const entry of await readdir(home, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const info = await stat(path).catch(() => undefined);
    // A lock or temp file that went away between the listing and the stat.
    if (info === undefined) continue;
    out[`${relative(home, path)}${info.isDirectory() ? '/' : ''}`] = (info.mode & 0o777).toString(8);
  }
  return out;
}

/** The modes the home must have: folders 0700, files 0600, the CA certificate aside. */
function expectedModes(modes: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.keys(modes).map((path) => [path, path.endsWith('/') ? '700' : PUBLIC_FILES.has(path) ? '644' : '600']));
}

/** Checks the files that must hide SECRET do hold it (so their mode matters), then every mode of the home. */
async function expectPrivateHome(home: string, slug: string): Promise<void> {
  const logs = await readdir(join(home, 'logs'));
  expect(logs).toEqual(expect.arrayContaining(['daemon.log', `${slug}-job.log`]));
  expect(await readFile(join(home, 'logs', `${slug}-job.log`), 'utf8')).toContain(`job sees ${SECRET}`);
  const composeFiles = await readdir(join(home, 'compose'));
  expect(composeFiles.length).toBeGreaterThan(0);
  for (const file of composeFiles) expect(await readFile(join(home, 'compose', file), 'utf8')).toContain(SECRET);
  expect(await readdir(home)).toEqual(expect.arrayContaining(['daemon.json', 'admin.json', 'repos.json', 'ports.json', 'processes.json']));
  const modes = await modesUnder(home);
  expect(modes).toEqual(expectedModes(modes));
}

beforeAll(async () => {
  const engine = await ensureDockerEngine();
  docker = new Docker({ socketPath: engine.socketPath });
  scratch = await mkdtemp(join(tmpdir(), 'devproxy-home-modes-'));
}, 600_000);

afterAll(async () => {
  for (const { repo, project, home } of repos) {
    if (home) await runCli(['proxy', 'stop', '--all'], { cwd: repo.main, env: envFor(home), timeoutMs: 120_000 });
    // Whatever a failed test left: this run's containers (by repository) and its project's networks, nothing else.
    await removeRepoContainers(docker, repo.main);
    await removeScopedNetworks(docker, project);
    await repo.cleanup();
  }
  if (scratch) await rm(scratch, { recursive: true, force: true });
}, 300_000);

describe('a home devproxy creates is private to its owner', { timeout: 240_000 }, () => {
  it('created by `proxy start`: the home, logs, compose files and state files are 0700/0600', async () => {
    const repo = await secretRepo('homemodes-start');
    // Two levels that do not exist yet: mkdir -p makes both.
    const home = join(scratch, 'start', 'devproxy-home');
    repos.at(-1)!.home = home;
    const cli = (args: string[]) => runCli(args, { cwd: repo.main, env: envFor(home), timeoutMs: 180_000 });
    const started = await cli(['proxy', 'start']);
    expect(started.code, started.stderr).toBe(0);
    expect(((await stat(home)).mode & 0o777).toString(8)).toBe('700');
    expect((await cli(['init'])).code).toBe(0);
    const up = await cli(['up']);
    expect(up.code, up.stderr + up.stdout).toBe(0);
    await expectPrivateHome(home, repos.at(-1)!.project);
  });

  it('created by `new`: the same, with the worktree’s setup log', async () => {
    const repo = await secretRepo('homemodes-new');
    const home = join(scratch, 'new', 'devproxy-home');
    repos.at(-1)!.home = home;
    const created = await runCli(['new', 'feature/alpha'], { cwd: repo.main, env: envFor(home), timeoutMs: 180_000 });
    expect(created.code, created.stderr + created.stdout).toBe(0);
    expect(await readdir(join(home, 'logs'))).toContain('alpha-setup.log');
    await expectPrivateHome(home, 'alpha');
  });
});

describe('a home that already exists readable by others is tightened', () => {
  /** A home as an older devproxy (or a 022 umask) left it: 0755 folders, a 0644 daemon log. */
  async function wideHome(name: string): Promise<string> {
    const home = join(scratch, name);
    await mkdir(join(home, 'logs'), { recursive: true });
    await writeFile(join(home, 'logs', 'daemon.log'), 'an older daemon\n');
    await chmod(home, 0o755);
    await chmod(join(home, 'logs'), 0o755);
    await chmod(join(home, 'logs', 'daemon.log'), 0o644);
    return home;
  }
  const modeOf = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);

  it('`proxy start` sets the home and logs/ to 0700 and the daemon log to 0600, and says so once', async () => {
    const home = await wideHome('wide-start');
    const env = envFor(home);
    try {
      const started = await runCli(['proxy', 'start'], { cwd: scratch, env });
      expect(started.code, started.stderr).toBe(0);
      expect(started.stderr).toContain(`note: ${home} was mode 0755, readable by other users; devproxy set it to 0700`);
      expect({ home: await modeOf(home), logs: await modeOf(join(home, 'logs')), log: await modeOf(join(home, 'logs', 'daemon.log')) }).toEqual({ home: '700', logs: '700', log: '600' });
      expect(await readFile(join(home, 'logs', 'daemon.log'), 'utf8')).toMatch(/^an older daemon\n/);
      expect((await runCli(['proxy', 'stop'], { cwd: scratch, env })).code).toBe(0);
      const again = await runCli(['proxy', 'start'], { cwd: scratch, env });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).not.toContain('note:');
    } finally {
      await runCli(['proxy', 'stop'], { cwd: scratch, env });
    }
  });

  it('a daemon started in the foreground tightens the home and warns in its log', async () => {
    const home = await wideHome('wide-foreground');
    const daemon = spawn(process.execPath, [CLI, 'proxy', 'start', '--foreground'], { cwd: scratch, env: envFor(home), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    daemon.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    daemon.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
    try {
      await waitFor(() => (output.includes('readable by other users') ? true : undefined), 15_000, 'the warning');
      expect(output).toMatch(new RegExp(`warn +${home.replaceAll('/', '\\/')} was mode 0755, readable by other users; set it to 0700`));
      expect(await modeOf(home)).toBe('700');
    } finally {
      daemon.kill('SIGTERM');
      await exited;
    }
  });
});
