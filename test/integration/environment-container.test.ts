import { mkdtemp, rm } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_REPO } from '../../runtime/compose.js';
import { bridgeGateway, localAddresses, type BridgeNetworkInspect } from '../../runtime/docker-gateway.js';
import { DockerObserver } from '../../runtime/docker-observer.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';
import { send, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { ensureDockerEngine, removeScopedNetworks, runScoped, TEST_IMAGE } from '../setup/docker-engine.js';

/** The project's name, which names its main worktree and so its Compose project: this run's own on the shared engine. */
const PROJECT = runScoped('contoso');

/**
 * A container calling a worktree service by its stable URL on a real Docker engine, with the
 * daemon started with no `--host`: the daemon's runtime starts the compose service with the
 * worktree environment (its hostnames in `extra_hosts` → host-gateway), then listens on the
 * bridge gateway by itself, and routes the container's calls by the live profile. The engine
 * may omit `IPAM.Config[].Gateway` (a Debian docker.io 20.10 started by hand does).
 */
let docker: Docker;
let home: string;
let repo: TempRepo;
let localApi: Upstream;
let remoteApi: Upstream;
let env: NodeJS.ProcessEnv;

const cli = (args: string[]) => runCli(args, { cwd: repo.main, env, timeoutMs: 240_000 });

/**
 * Fetches $API_URL every 200 ms into the page busybox httpd serves on :3000. The test image's
 * static busybox cannot resolve names (its getaddrinfo has no NSS), so the script looks the
 * name up in /etc/hosts itself, which is where Docker writes `extra_hosts`.
 */
const CALLER_SCRIPT = [
  'mkdir -p /www && echo starting > /www/index.html',
  'authority=$${API_URL#http://}; name=$${authority%%:*}; port=$${authority##*:}',
  `(while true; do ip=$$(busybox awk -v n="$$name" '$$2 == n { print $$1; exit }' /etc/hosts); busybox wget -q -O /www/next --header "Host: $$authority" "http://$$ip:$$port/items" && busybox mv /www/next /www/index.html; sleep 0.2; done) &`,
  'exec busybox httpd -f -p 3000 -h /www',
].join('\n');

interface StatusJson {
  worktrees: Array<{ name: string; services: Array<{ name: string; route: string; target: string | null }> }>;
}

/** The page the caller container serves, read on its host port (from `status`). */
async function callerPage(): Promise<string | undefined> {
  const status = JSON.parse((await cli(['status', '--json', '--no-probe'])).stdout) as StatusJson;
  const target = status.worktrees.find((w) => w.name === PROJECT)?.services.find((s) => s.name === 'caller');
  if (target?.route !== 'local' || !target.target) return undefined;
  const port = Number(target.target.split(':')[1]);
  return (await send(port, `127.0.0.1:${port}`)).body.trim();
}

beforeAll(async () => {
  const engine = await ensureDockerEngine();
  docker = new Docker({ socketPath: engine.socketPath });
  home = await mkdtemp(join(tmpdir(), 'devproxy-envct-home-'));
  localApi = await startHttpUpstream((_req, res) => res.end('api local'));
  remoteApi = await startHttpUpstream((_req, res) => res.end('api remote'));
  repo = await createTempRepo({
    // stop_signal: busybox as PID 1 ignores SIGTERM, so each stop waited out the 5 s grace, then killed it anyway.
    'docker-compose.yml': JSON.stringify({ services: { caller: { image: TEST_IMAGE, stop_signal: 'SIGKILL', command: ['sh', '-c', CALLER_SCRIPT] } } }),
    'devproxy.yaml': JSON.stringify({
      name: PROJECT,
      services: {
        api: { local: { port: localApi.port }, remote: `http://127.0.0.1:${remoteApi.port}` },
        caller: { local: { compose: 'caller', port: 3000 } },
      },
      profiles: { minimal: ['caller'], standard: ['api', 'caller'] },
      default: 'standard',
    }),
  });
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
  expect((await cli(['init'])).code).toBe(0);
  const started = await cli(['proxy', 'start', '--json']);
  expect(started.code, started.stderr).toBe(0);
}, 600_000);

afterAll(async () => {
  if (repo) await cli(['proxy', 'stop', '--all']);
  if (docker && repo) {
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${repo.main}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    await removeScopedNetworks(docker, PROJECT);
  }
  await Promise.all([localApi?.close(), remoteApi?.close()]);
  await repo?.cleanup();
  if (home) await rm(home, { recursive: true, force: true });
}, 240_000);

describe('a compose service run by the daemon', { timeout: 240_000 }, () => {
  it('finds the bridge gateway on the real engine, from IPAM or from the bridge interface', async () => {
    const inspect = (await docker.getNetwork('bridge').inspect()) as BridgeNetworkInspect;
    const observer = new DockerObserver({ dockerHost: `unix://${(await ensureDockerEngine()).socketPath}` });
    try {
      const found = await observer.hostGateway();
      expect(found).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      expect(found).toBe(bridgeGateway(inspect, networkInterfaces(), await localAddresses()));
      expect(await localAddresses()).toContain(found);
      console.info(`bridge gateway ${found}; the engine ${inspect.IPAM?.Config?.some((c) => c.Gateway) ? 'reports' : 'omits'} IPAM.Config[].Gateway`);
    } finally {
      observer.close();
    }
  });

  it('calls a worktree service by its stable URL with no --host: routed local, then remote after a flip, in the same container', async () => {
    await waitFor(async () => ((await callerPage()) === 'api local' ? true : undefined), 120_000, 'the container to fetch "api local"');
    const [container] = (await docker.listContainers({ filters: { label: [`${LABEL_REPO}=${repo.main}`] } })).map((c) => c.Id);
    const status = await cli(['proxy', 'status', '--json']);
    const listen = (JSON.parse(status.stdout) as { listen: string[] }).listen;
    const inspect = (await docker.getNetwork('bridge').inspect()) as BridgeNetworkInspect;
    const gateway = bridgeGateway(inspect, networkInterfaces(), await localAddresses())!;
    expect(listen).toContain('127.0.0.1');
    expect(listen).toContain(gateway);
    expect(listen).not.toContain('0.0.0.0');
    expect((await cli(['proxy', 'status'])).stdout).toContain(`listening on: ${listen.join(', ')}`);

    const flipped = await cli(['use', 'minimal']);
    expect(flipped.code, flipped.stderr).toBe(0);
    await waitFor(async () => ((await callerPage()) === 'api remote' ? true : undefined), 30_000, 'the container to fetch "api remote"');
    expect((await docker.listContainers({ filters: { label: [`${LABEL_REPO}=${repo.main}`] } })).map((c) => c.Id)).toEqual([container]);
  });
});
