/**
 * Stopping everything (issue 12, item 6): `devproxy down`, `up`, and `proxy stop --all` through
 * the real CLI and daemon, with a real compose container (busybox httpd) and a real process in a
 * real git worktree. Afterwards no process and no container of the repository may be left.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_REPO, LABEL_WORKTREE } from '../../runtime/compose.js';
import { waitFor } from '../helpers/git-repo.js';
import { startLifecycle, type LifecycleFixture } from '../helpers/lifecycle-fixture.js';
import { getRouted } from '../helpers/upstreams.js';
import { ensureDockerEngine, removeScopedNetworks, runScoped, TEST_IMAGE } from '../setup/docker-engine.js';
import { isAlive } from '../../workspace/home.js';

/** The project's name, and so its Compose project `<name>-alpha`: this run's own on the shared engine. */
const PROJECT = runScoped('downlife');

let docker: Docker;
let fixture: LifecycleFixture | undefined;
let home: string;
let httpPort: number;
let alpha: string;
const cli = (args: string[], cwd?: string) => fixture!.cli(args, cwd);

const get = (host: string) => getRouted(httpPort, host);

interface StatusJson {
  worktrees: Array<{ name: string; down: boolean; services: Array<{ name: string; route: string; desired: string; runtime?: { state: string; pid?: number; port?: number } }> }>;
}
const alphaStatus = async () => (JSON.parse((await cli(['status', '--json', '--no-probe'])).stdout) as StatusJson).worktrees.find((w) => w.name === 'alpha')!;
const running = async () => (await docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${fixture!.repo.main}`] } })).filter((c) => c.State === 'running');
const processes = async () => (JSON.parse(await readFile(join(home, 'processes.json'), 'utf8').catch(() => '{"processes": []}')) as { processes: Array<{ pid: number }> }).processes;

beforeAll(async () => {
  const engine = await ensureDockerEngine();
  docker = new Docker({ socketPath: engine.socketPath });
  fixture = await startLifecycle({
    homePrefix: 'devproxy-down-home-',
    remoteHost: 'dev.localhost',
    files: (remoteUrl) => ({
      // stop_signal: busybox as PID 1 ignores SIGTERM, so each stop waited out the 5 s grace, then killed it anyway.
      'compose.yaml': JSON.stringify({ version: '2.4', services: { web: { image: TEST_IMAGE, stop_signal: 'SIGKILL', ports: ['3000:3000'], command: ['sh', '-c', 'mkdir -p /www && echo web > /www/index.html && exec busybox httpd -f -p 3000 -h /www'] } } }),
      'devproxy.yaml': JSON.stringify({
        name: PROJECT,
        services: {
          ui: { local: { compose: 'web', port: 3000 }, remote: remoteUrl, health: '/' },
          worker: { local: { command: `node -e "require('http').createServer((q, s) => s.end('worker ' + process.pid + ' ' + process.env.PORT)).listen(process.env.PORT)"` }, remote: remoteUrl },
        },
        profiles: { minimal: [], full: ['ui', 'worker'] },
        default: 'minimal',
      }),
    }),
    profile: 'full',
    timeoutMs: 240_000,
  });
  ({ home, httpPort, alpha } = fixture);
}, 900_000);

afterAll(async () => {
  if (fixture === undefined) return;
  const main = fixture.repo.main;
  await fixture.close();
  // Whatever a failed test left: this run's containers (by repository) and its project's networks, nothing else.
  for (const c of await docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${main}`] } })) await docker.getContainer(c.Id).remove({ force: true });
  await removeScopedNetworks(docker, PROJECT);
}, 300_000);

describe('stopping everything', { timeout: 240_000 }, () => {
  let workerBody: string;

  it('down stops the worktree\'s container and process, routes remote, leaves the profile file; status says so', async () => {
    expect(await get('ui.alpha.localhost')).toMatchObject({ status: 200, route: 'local' });
    workerBody = (await get('worker.alpha.localhost')).body;
    expect(workerBody).toMatch(/^worker \d+ \d+$/);
    const pid = Number(workerBody.split(' ')[1]);
    const profile = await readFile(join(alpha, '.devproxy', 'profile.yaml'), 'utf8');

    const down = await cli(['down'], alpha);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain(`${alpha}: down; stopped ui, worker`);
    expect(await running()).toEqual([]);
    expect(isAlive(pid)).toBe(false);
    expect(await processes()).toEqual([]);
    expect(await readFile(join(alpha, '.devproxy', 'profile.yaml'), 'utf8')).toBe(profile);
    expect(await get('ui.alpha.localhost')).toMatchObject({ status: 200, route: 'remote', body: 'from DEV for alpha' });
    expect(await get('worker.alpha.localhost')).toMatchObject({ status: 200, route: 'remote' });
    const status = await alphaStatus();
    expect(status.down).toBe(true);
    expect(status.services.map((s) => [s.name, s.route, s.desired])).toEqual([['ui', 'remote', 'remote'], ['worker', 'remote', 'remote']]);
    const human = (await cli(['status', '--no-probe'])).stdout;
    expect(human).toMatch(/alpha\s+full \(down\)/);
    expect(human).toContain('Down (local instances stopped by `devproxy down`, every route remote): alpha; `devproxy up` starts them again.');
  });

  it('up starts them again on the same port and waits until they serve', async () => {
    const up = await cli(['up'], alpha);
    expect(up.code, up.stderr).toBe(0);
    expect(await get('ui.alpha.localhost')).toMatchObject({ status: 200, route: 'local' });
    const worker = await get('worker.alpha.localhost');
    expect(worker.route).toBe('local');
    expect(worker.body.split(' ')[2]).toBe(workerBody.split(' ')[2]);
    expect((await alphaStatus()).down).toBe(false);
  });

  it('proxy stop --all stops the daemon and every process and container; the next daemon keeps them down until use', async () => {
    const pid = Number((await get('worker.alpha.localhost')).body.split(' ')[1]);
    expect((await running()).length).toBe(1);
    const stop = await cli(['proxy', 'stop', '--all']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toMatch(/devproxy stopped \(pid \d+\); 2 local instances stopped, every worktree is down until `devproxy up --all`/);
    expect(await running()).toEqual([]);
    expect(await docker.listContainers({ all: true, filters: { label: [`${LABEL_WORKTREE}=${alpha}`] } })).toEqual([]);
    expect(isAlive(pid)).toBe(false);
    expect(await processes()).toEqual([]);
    expect((await cli(['proxy', 'status'])).code).toBe(3);

    const started = await cli(['proxy', 'start', '--json']);
    expect(started.code, started.stderr).toBe(0);
    httpPort = (JSON.parse(started.stdout) as { httpPort: number }).httpPort;
    await waitFor(async () => ((await alphaStatus())?.down ? true : undefined), 30_000, 'alpha down after the restart');
    expect(await get('ui.alpha.localhost')).toMatchObject({ route: 'remote' });
    expect(await running()).toEqual([]);

    const use = await cli(['use', 'full'], alpha);
    expect(use.code, use.stderr + use.stdout).toBe(0);
    expect(await get('ui.alpha.localhost')).toMatchObject({ status: 200, route: 'local' });
    expect(await get('worker.alpha.localhost')).toMatchObject({ status: 200, route: 'local' });
  });

  it('proxy stop without --all says what it leaves running', async () => {
    const stop = await cli(['proxy', 'stop']);
    expect(stop.stdout).toContain('local processes and containers keep running (the next start adopts them; `proxy stop --all` stops them too)');
    expect((await running()).length).toBe(1);
    const stopAll = await cli(['proxy', 'stop', '--all']);
    expect(stopAll.code, stopAll.stderr).toBe(0);
    expect(stopAll.stdout).toContain('devproxy was not running');
    expect(await running()).toEqual([]);
    expect(await processes()).toEqual([]);
    const restarted = await cli(['proxy', 'start', '--json']);
    httpPort = (JSON.parse(restarted.stdout) as { httpPort: number }).httpPort;
  });
});
