/**
 * Regression: `devproxy proxy stop --all` left the main checkout's Compose network
 * (`<project>-<project>_default`) on the engine. The daemon stops a down worktree's containers
 * but keeps its network; the sweep after the daemon exits ran in a new process that knew the
 * Compose project only from containers, and there were none left. A worktree lost its network
 * only when `rm` went through the daemon, which knew the project; `rm` with no daemon running
 * after a `down` left it too. Real CLI, daemon, git and Docker engine; the networks are checked
 * on the engine by their Compose project label.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { composeProjectName, LABEL_REPO } from '../../runtime/compose.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, type TempRepo } from '../helpers/git-repo.js';
import { ensureDockerEngine, removeRepoContainers, removeScopedNetworks, runScoped, TEST_IMAGE } from '../setup/docker-engine.js';

/** The project's name, and so its Compose projects `<name>-<worktree>`: this run's own on the shared engine. */
const PROJECT = runScoped('stopnet');
/** The Compose project of the main checkout (its slug is the project's name) and of worktree `alpha`. */
const MAIN_PROJECT = composeProjectName(PROJECT, PROJECT);
const ALPHA_PROJECT = composeProjectName(PROJECT, 'alpha');

let docker: Docker;
let home: string | undefined;
let repo: TempRepo | undefined;
let env: NodeJS.ProcessEnv;
/** The folder of worktree `alpha` (made by the first case). */
let alpha: string;
const cli = (args: string[], cwd = repo!.main) => runCli(args, { cwd, env, timeoutMs: 240_000 });

/** Names of the engine's networks that Compose made for `project`. */
const networksOf = async (project: string) =>
  (await docker.listNetworks({ filters: { label: [`com.docker.compose.project=${project}`] } })).map((n) => n.Name);

beforeAll(async () => {
  const engine = await ensureDockerEngine();
  docker = new Docker({ socketPath: engine.socketPath });
  home = await mkdtemp(join(tmpdir(), 'devproxy-stopnet-home-'));
  repo = await createTempRepo({
    // stop_signal: busybox as PID 1 ignores SIGTERM, so each stop waited out the 5 s grace, then killed it anyway.
    'compose.yaml': JSON.stringify({ version: '2.4', services: { web: { image: TEST_IMAGE, stop_signal: 'SIGKILL', ports: ['3000:3000'], command: ['sh', '-c', 'mkdir -p /www && echo web > /www/index.html && exec busybox httpd -f -p 3000 -h /www'] } } }),
    'devproxy.yaml': JSON.stringify({
      name: PROJECT,
      services: { ui: { local: { compose: 'web', port: 3000 }, health: '/' } },
      profiles: { minimal: ['ui'] },
      default: 'minimal',
    }),
  });
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
  const started = await cli(['proxy', 'start', '--json']);
  expect(started.code, started.stderr).toBe(0);
}, 600_000);

afterAll(async () => {
  if (repo) {
    await cli(['proxy', 'stop', '--all']);
    // Whatever a failed test left: this run's containers (by repository) and its project's networks, nothing else.
    await removeRepoContainers(docker, repo.main);
    await removeScopedNetworks(docker, PROJECT);
    await repo.cleanup();
  }
  if (home) await rm(home, { recursive: true, force: true });
}, 300_000);

describe('stopping leaves no Compose network behind', { timeout: 240_000 }, () => {
  it('proxy stop --all removes the networks of the main checkout and of every worktree', async () => {
    const up = await cli(['up']);
    expect(up.code, up.stderr + up.stdout).toBe(0);
    const created = await cli(['new', 'feature/alpha', '--profile', 'minimal']);
    expect(created.code, created.stderr + created.stdout).toBe(0);
    alpha = join(`${repo!.main}.worktrees`, 'alpha');
    expect(await networksOf(MAIN_PROJECT)).toEqual([`${MAIN_PROJECT}_default`]);
    expect(await networksOf(ALPHA_PROJECT)).toEqual([`${ALPHA_PROJECT}_default`]);

    const stop = await cli(['proxy', 'stop', '--all']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(await docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${repo!.main}`] } })).toEqual([]);
    expect({ main: await networksOf(MAIN_PROJECT), alpha: await networksOf(ALPHA_PROJECT) }).toEqual({ main: [], alpha: [] });
  });

  it('rm with no daemon running removes the network of a worktree the daemon had taken down', async () => {
    const started = await cli(['proxy', 'start', '--json']);
    expect(started.code, started.stderr).toBe(0);
    const up = await cli(['up'], alpha);
    expect(up.code, up.stderr + up.stdout).toBe(0);
    expect(await networksOf(ALPHA_PROJECT)).toEqual([`${ALPHA_PROJECT}_default`]);
    const down = await cli(['down'], alpha);
    expect(down.code, down.stderr).toBe(0);
    const stop = await cli(['proxy', 'stop']);
    expect(stop.code, stop.stderr).toBe(0);

    const removed = await cli(['rm', 'alpha', '--force']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(await docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${repo!.main}`] } })).toEqual([]);
    expect(await networksOf(ALPHA_PROJECT)).toEqual([]);
  });
});
