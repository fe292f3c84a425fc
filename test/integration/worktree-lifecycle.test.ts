/**
 * The worktree lifecycle as a user drives it — `new`, `use`, `logs`, `restart`, `rm` through the
 * real CLI and daemon — against a real Docker engine (busybox httpd containers), real processes
 * and real git. Make-before-break is proven by keeping requests flowing through flips.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_REPO, LABEL_SERVICE, LABEL_WORKTREE } from '../../runtime/compose.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { ensureDockerEngine, removeRepoContainers, removeScopedNetworks, runScoped, TEST_IMAGE } from '../setup/docker-engine.js';

/** The project's name, and so its Compose projects `<name>-<worktree>`: this run's own on the shared engine. */
const PROJECT = runScoped('life');

let docker: Docker;
let home: string;
let repo: TempRepo;
let remote: Upstream;
let env: NodeJS.ProcessEnv;
let httpPort: number;
const cli = (args: string[], cwd = repo.main) => runCli(args, { cwd, env, timeoutMs: 240_000 });

function httpd(name: string, port: number): Record<string, unknown> {
  return {
    image: TEST_IMAGE,
    // Busybox as PID 1 ignores SIGTERM: each stop waited out the 5 s grace, then killed it anyway.
    stop_signal: 'SIGKILL',
    ports: [`${port}:${port}`],
    command: ['sh', '-c', `echo "${name} booting"; mkdir -p /www && echo "${name} from $$HOSTNAME" > /www/index.html && exec busybox httpd -f -p ${port} -h /www`],
  };
}

/** GET through the proxy with a stable Host; resolves with status, route and body (never rejects). */
function get(host: string): Promise<{ status: number; route: string; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: httpPort, path: '/', headers: { host }, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, route: String(res.headers['x-devproxy-route']), body }));
      res.on('error', (error) => resolve({ status: -1, route: '', body: String(error) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ status: -1, route: '', body: String(error) }));
    req.end();
  });
}

const containersOf = (worktree: string) => docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${repo.main}`, `${LABEL_WORKTREE}=${worktree}`] } });

beforeAll(async () => {
  const engine = await ensureDockerEngine();
  docker = new Docker({ socketPath: engine.socketPath });
  home = await mkdtemp(join(tmpdir(), 'devproxy-life-home-'));
  remote = await startHttpUpstream((req, res) => res.end(`api from DEV for ${req.headers['x-devproxy-worktree'] ?? '?'}`));
  repo = await createTempRepo({
    'compose.yaml': JSON.stringify({ version: '2.4', services: { web: httpd('web', 3000), api: httpd('api', 4000) } }),
    'devproxy.yaml': JSON.stringify({
      name: PROJECT,
      services: {
        ui: { local: { compose: 'web', port: 3000 }, health: '/', memory: '64MB' },
        api: { local: { compose: 'api', port: 4000 }, remote: `http://api-dev.localhost:${remote.port}`, memory: '32MB' },
        worker: { local: { command: `node -e "console.log('worker on', process.env.PORT); require('http').createServer((q, s) => s.end('worker ' + process.env.PORT)).listen(process.env.PORT)"` }, memory: '16MB' },
      },
      profiles: { minimal: ['ui'], standard: ['ui', 'api'], full: ['ui', 'api', 'worker'] },
      default: 'minimal',
    }),
  });
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
  const started = await cli(['proxy', 'start', '--json']);
  expect(started.code, started.stderr).toBe(0);
  httpPort = (JSON.parse(started.stdout) as { httpPort: number }).httpPort;
}, 900_000);

afterAll(async () => {
  for (const name of ['feature/alpha', 'feature/beta']) await cli(['rm', name.split('/')[1]!, '--force']);
  await cli(['proxy', 'stop', '--all']);
  await remote?.close();
  // Whatever a failed test left behind.
  await removeRepoContainers(docker, repo.main);
  await removeScopedNetworks(docker, PROJECT);
  await repo?.cleanup();
  await rm(home, { recursive: true, force: true });
}, 300_000);

describe('worktree lifecycle on a real Docker engine', { timeout: 240_000 }, () => {
  let alpha: string;

  it('new creates the worktree, starts only its profile\'s local services, and prints progress and URLs', async () => {
    const result = await cli(['new', 'feature/alpha', '--profile', 'minimal']);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    alpha = join(`${repo.main}.worktrees`, 'alpha');
    expect(result.stdout).toContain(`created worktree ${alpha} on branch feature/alpha (profile minimal)`);
    expect(result.stdout).toMatch(/ui\s+starting…/);
    expect(result.stdout).toMatch(/ui\s+healthy \(\d+\.\d s\)/);
    expect(result.stdout).toMatch(new RegExp(`ui\\s+local\\s+http.*ui\\.alpha\\.localhost`));
    expect(await readFile(join(alpha, '.devproxy', 'profile.yaml'), 'utf8')).toContain('profile: minimal');
    expect((await containersOf(alpha)).map((c) => c.Labels[LABEL_SERVICE])).toEqual(['ui']);
    const ui = await get('ui.alpha.localhost');
    expect(ui).toMatchObject({ status: 200, route: 'local' });
    expect(ui.body).toMatch(/^web from /);
    expect(await get('api.alpha.localhost')).toMatchObject({ route: 'remote', body: 'api from DEV for alpha' });
  });

  it('refuses a bad name, an existing worktree and a dirty base, changing nothing', async () => {
    const bad = await cli(['new', 'Feature_X']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('"Feature_X" cannot name a worktree');
    expect(bad.stderr).toContain('devproxy new feature-x');
    const again = await cli(['new', 'feature/alpha']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('branch "feature/alpha" already exists');
    await writeFile(join(repo.main, 'devproxy.yaml'), `${await readFile(join(repo.main, 'devproxy.yaml'), 'utf8')}\n`);
    const dirty = await cli(['new', 'feature/gamma']);
    expect(dirty.code).toBe(1);
    expect(dirty.stderr).toContain('has uncommitted changes that the new worktree would not contain');
    repo.git(['checkout', '--', 'devproxy.yaml']);
    expect(repo.git(['branch', '--list', 'feature/gamma'])).toBe('');
  });

  it('use --dry-run prints the exact delta and changes nothing', async () => {
    const result = await cli(['use', 'standard', '--dry-run', '--json'], alpha);
    expect(JSON.parse(result.stdout)).toMatchObject({ worktree: 'alpha', dryRun: true, start: ['api'], stop: [], keep: ['ui'], routes: [{ service: 'api', from: 'remote', to: 'local' }] });
    expect(await readFile(join(alpha, '.devproxy', 'profile.yaml'), 'utf8')).toContain('profile: minimal');
    expect((await containersOf(alpha)).length).toBe(1);
  });

  it('use starts exactly what becomes local, never restarts what stays, and flips with zero failed requests', async () => {
    const uiBefore = (await containersOf(alpha)).find((c) => c.Labels[LABEL_SERVICE] === 'ui')!;
    let stop = false;
    const outcomes: Array<{ status: number; route: string }> = [];
    // Bounded: stops when the flips are done, and after at most 50 000 requests.
    const load = (async () => {
      while (!stop && outcomes.length < 50_000) outcomes.push(await get('api.alpha.localhost'));
    })();
    for (const profile of ['standard', 'minimal', 'standard']) {
      const flipped = await cli(['use', profile], alpha);
      expect(flipped.code, flipped.stderr).toBe(0);
      const want = profile === 'standard' ? 'local' : 'remote';
      await waitFor(async () => ((await get('api.alpha.localhost')).route === want ? true : undefined), 120_000, `api ${want}`);
    }
    stop = true;
    await load;
    const failed = outcomes.filter((o) => o.status !== 200);
    console.log(`flips under load: ${outcomes.length} requests, ${failed.length} failed, ${outcomes.filter((o) => o.route === 'local').length} served locally`);
    expect(failed).toEqual([]);
    expect(outcomes.some((o) => o.route === 'local') && outcomes.some((o) => o.route === 'remote')).toBe(true);

    const after = await containersOf(alpha);
    const uiAfter = after.find((c) => c.Labels[LABEL_SERVICE] === 'ui')!;
    expect(uiAfter.Id).toBe(uiBefore.Id);
    expect(uiAfter.State).toBe('running');
    expect(after.filter((c) => c.State === 'running').map((c) => c.Labels[LABEL_SERVICE]).sort()).toEqual(['api', 'ui']);
  });

  it('runs the same compose service in two worktrees at once without port clashes', async () => {
    const beta = await cli(['new', 'feature/beta', '--profile', 'minimal']);
    expect(beta.code, beta.stderr).toBe(0);
    const [a, b] = await Promise.all([get('ui.alpha.localhost'), get('ui.beta.localhost')]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(a.body).not.toBe(b.body);
    const status = JSON.parse((await cli(['status', '--json'])).stdout) as { worktrees: Array<{ name: string; services: Array<{ name: string; target: string }> }> };
    const target = (w: string) => status.worktrees.find((x) => x.name === w)!.services.find((s) => s.name === 'ui')!.target;
    expect(target('alpha')).not.toBe(target('beta'));
  });

  it('runs a process service with PORT injected, keeps its log, and shows memory in status', async () => {
    const full = await cli(['use', 'full'], alpha);
    expect(full.code, full.stderr).toBe(0);
    const worker = await waitFor(async () => {
      const response = await get('worker.alpha.localhost');
      return response.status === 200 ? response : undefined;
    }, 60_000);
    const port = /^worker (\d+)$/.exec(worker.body)?.[1];
    expect(port).toBeDefined();
    const logs = await cli(['logs', 'worker', '-n', '20'], alpha);
    expect(logs.stdout).toContain(`worker on ${port}`);
    const json = JSON.parse((await cli(['status', '--json'])).stdout) as { worktrees: Array<{ name: string; memory: { profileBytes: number; fullBytes: number } }> };
    expect(json.worktrees.find((w) => w.name === 'alpha')!.memory).toMatchObject({ profileBytes: 112 * 1024 ** 2, fullBytes: 112 * 1024 ** 2 });
    const human = (await cli(['status'])).stdout;
    expect(human).toMatch(/MEMORY\s+PROFILE\s+LOCAL NOW\s+PROFILE DECLARES\s+FULL WOULD NEED/);
    expect(human).toMatch(/alpha\s+full\s+(-|\S+ \S?B)\s+112 MB\s+112 MB/);
    // LOCAL NOW reads '-' until the daemon's memory refresh (every 10 s) has measured alpha's services.
    const measured = /alpha\s+full\s+\S+ \S?B\s+112 MB\s+112 MB/;
    await waitFor(async () => (measured.test((await cli(['status'])).stdout) ? true : undefined), 45_000, "alpha's LOCAL NOW figure");
  });

  it('a container killed by hand shows as failed with its last output; restart brings it back', async () => {
    const api = (await containersOf(alpha)).find((c) => c.Labels[LABEL_SERVICE] === 'api' && c.State === 'running')!;
    await docker.getContainer(api.Id).kill();
    // Until the engine's die event arrives, the proxy can only say that nothing listens there.
    const failed = await waitFor(async () => {
      const response = await get('api.alpha.localhost');
      return response.body.includes('the local container of \\"api\\" failed') ? response : undefined;
    }, 30_000, 'the 502 that names the failed container');
    expect(failed.status).toBe(502);
    expect(failed.body).toContain('api booting');
    const restarted = await cli(['restart', 'api'], alpha);
    expect(restarted.code, restarted.stderr).toBe(0);
    expect(restarted.stdout).toContain('api in alpha: healthy');
    expect((await get('api.alpha.localhost')).route).toBe('local');
  });

  it('rm stops and removes everything of the worktree and the worktree itself', async () => {
    const removed = await cli(['rm', 'alpha', '--force', '--delete-branch']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(await containersOf(alpha)).toEqual([]);
    expect(repo.git(['worktree', 'list'])).not.toContain('alpha');
    expect(repo.git(['branch', '--list', 'feature/alpha'])).toBe('');
    await expect(get('worker.alpha.localhost').then((r) => r.status)).resolves.toBe(404);
    const processes = JSON.parse(await readFile(join(home, 'processes.json'), 'utf8').catch(() => '{}')) as unknown;
    expect(JSON.stringify(processes)).not.toContain(alpha);
  });
});
