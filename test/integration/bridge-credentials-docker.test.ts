/**
 * Security finding 1 (HIGH) on a real Docker engine: the daemon's bridge listeners lent the
 * remote's credentials to any container. A daemon started with no `--host` runs a compose service
 * that calls a remote route (`auth.headers`) through the bridge gateway, as it does today; then
 * containers the test runs itself, on the default bridge and on a network of their own, call the
 * same route. The remote (plain HTTP on 127.0.0.1) records what it got: the key reaches it only
 * from devproxy's container. Then the address cache (runtime/owned-addresses.ts) as the runtime
 * wires it: a container that just started is known at once, and an address a stopped container
 * freed is not lent to the one that got it next. Every container and network made here is removed.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_REPO, LABEL_SERVICE, LABEL_SLUG, LABEL_WORKTREE } from '../../runtime/compose.js';
import { bridgeGateway, localAddresses, type BridgeNetworkInspect } from '../../runtime/docker-gateway.js';
import { LocalRuntime } from '../../runtime/local-runtime.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { ensureDockerEngine, removeScopedNetworks, runScoped, TEST_IMAGE } from '../setup/docker-engine.js';

const PROJECT = runScoped('bridgecreds');
const SECRET = 'bridge-docker-secret-9e2b41';
/** The label every container this file runs itself carries (devproxy's own carry theirs). */
const TEST_LABEL = 'dev.devproxy.test.bridge-credentials';
const RUN_ID = randomUUID();

let docker: Docker;
let socketPath: string;
let home: string;
let repo: TempRepo;
let remoteApi: Upstream;
let env: NodeJS.ProcessEnv;
/** The bridge gateway when the daemon can listen there (a local address), else why not. */
let gateway: string | undefined;
let noBridge = '';
const networks: string[] = [];

const cli = (args: string[]) => runCli(args, { cwd: repo.main, env, timeoutMs: 240_000 });

/**
 * Fetches the remote route every 200 ms through the proxy. The test image's static busybox
 * cannot resolve names, so the script looks the name up in /etc/hosts itself, where Docker
 * writes `extra_hosts`; busybox httpd on :3000 keeps the service healthy for devproxy.
 */
const CALLER_SCRIPT = [
  'mkdir -p /www && echo up > /www/index.html',
  'authority=$${API_URL#http://}; name=$${authority%%:*}; port=$${authority##*:}',
  `(while true; do ip=$$(busybox awk -v n="$$name" '$$2 == n { print $$1; exit }' /etc/hosts); busybox wget -q -O /dev/null --header "Host: $$authority" "http://$$ip:$$port/from-ours"; sleep 0.2; done) &`,
  'exec busybox httpd -f -p 3000 -h /www',
].join('\n');

async function removeOurs(): Promise<void> {
  const left = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${RUN_ID}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
}

/** Runs the test image with `cmd` (not started by devproxy unless `labels` say so) and answers its id once it runs. */
async function runContainer(cmd: string, options: { network?: string; ip?: string; labels?: Record<string, string> } = {}): Promise<string> {
  const container = await docker.createContainer({
    Image: TEST_IMAGE,
    Cmd: ['sh', '-c', cmd],
    Labels: { [TEST_LABEL]: RUN_ID, ...options.labels },
    HostConfig: { NetworkMode: options.network ?? 'bridge' },
    ...(options.ip === undefined || options.network === undefined ? {} : { NetworkingConfig: { EndpointsConfig: { [options.network]: { IPAMConfig: { IPv4Address: options.ip } } } } }),
  });
  await container.start();
  return container.id;
}

/** The exit code of a container once it ended. */
async function exitCode(id: string): Promise<number> {
  return ((await docker.getContainer(id).wait()) as { StatusCode: number }).StatusCode;
}

async function addressOn(id: string, network: string): Promise<string> {
  const info = await docker.getContainer(id).inspect();
  return info.NetworkSettings.Networks[network]!.IPAddress;
}

/** A network of this run; with `subnet`, one whose addresses a container can ask for (`--ip`). */
async function createNetwork(base: string, subnet?: string): Promise<string> {
  const name = runScoped(`${base}-${RUN_ID.slice(0, 8)}`);
  await docker.createNetwork({ Name: name, Labels: { [TEST_LABEL]: RUN_ID }, ...(subnet === undefined ? {} : { IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] } }) });
  networks.push(name);
  return name;
}

/**
 * A network created with a subnet of its own, so that a container can ask for a given address:
 * one the engine picked as free for a probe network. Another file's compose network may take it
 * between the probe's removal and the creation (the engine hands out the lowest free pool), so a
 * few rounds are tried.
 */
async function networkWithOwnSubnet(base: string): Promise<string> {
  for (let round = 1; ; round++) {
    const probe = await createNetwork(`${base}-probe`);
    const configs = ((await docker.getNetwork(probe).inspect()) as { IPAM: { Config: Array<{ Subnet: string }> } }).IPAM.Config;
    const subnet = configs.find((c) => c.Subnet.includes('.'))!.Subnet;
    await docker.getNetwork(probe).remove();
    try {
      return await createNetwork(base, subnet);
    } catch (error) {
      if (round === 5 || !/overlap/i.test(String(error))) throw error;
    }
  }
}

beforeAll(async () => {
  const engine = await ensureDockerEngine();
  socketPath = engine.socketPath;
  docker = new Docker({ socketPath });
  const inspect = (await docker.getNetwork('bridge').inspect()) as BridgeNetworkInspect;
  const found = bridgeGateway(inspect, networkInterfaces(), await localAddresses());
  if (found !== undefined && (await localAddresses()).includes(found)) gateway = found;
  else noBridge = `the bridge gateway (${found ?? 'unknown'}) is not a local address here, so the daemon cannot listen on it`;
  home = await mkdtemp(join(tmpdir(), 'devproxy-bridgecreds-home-'));
  remoteApi = await startHttpUpstream((_req, res) => res.end('remote'));
  repo = await createTempRepo({
    'docker-compose.yml': JSON.stringify({ services: { caller: { image: TEST_IMAGE, stop_signal: 'SIGKILL', command: ['sh', '-c', CALLER_SCRIPT] } } }),
    'devproxy.yaml': JSON.stringify({
      name: PROJECT,
      services: {
        api: { remote: `http://127.0.0.1:${remoteApi.port}`, auth: { headers: { 'x-api-key': '${env:BRIDGE_API_KEY}' } } },
        caller: { local: { compose: 'caller', port: 3000 } },
      },
      profiles: { standard: ['caller'] },
      default: 'standard',
    }),
  });
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0', BRIDGE_API_KEY: SECRET };
}, 600_000);

afterAll(async () => {
  if (repo) await cli(['proxy', 'stop', '--all']);
  if (docker) {
    await removeOurs();
    if (repo) {
      const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${repo.main}`] } });
      await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    }
    await removeScopedNetworks(docker, PROJECT);
    for (const name of networks) await docker.getNetwork(name).remove().catch(() => undefined);
  }
  await remoteApi?.close();
  await repo?.cleanup();
  if (home) await rm(home, { recursive: true, force: true });
}, 240_000);

describe('credentials on the Docker bridge, real engine', { timeout: 300_000 }, () => {
  it('devproxy’s container gets the remote’s key through the bridge; containers the test ran itself, on the default bridge and on another network, are served without it', async (ctx) => {
    if (gateway === undefined) ctx.skip(noBridge);
    expect((await cli(['init'])).code).toBe(0);
    const started = await cli(['proxy', 'start', '--json']);
    expect(started.code, started.stderr).toBe(0);
    const ours = await waitFor(() => remoteApi.requests.find((r) => r.url === '/from-ours'), 180_000, 'devproxy’s container to reach the remote');
    expect(ours.headers['x-api-key']).toBe(SECRET);
    const status = JSON.parse((await cli(['proxy', 'status', '--json'])).stdout) as { httpPort: number; listen: string[] };
    expect(status.listen).toContain(gateway);

    const call = (path: string) => `busybox wget -q -O /dev/null --header "Host: api.${PROJECT}.localhost:${status.httpPort}" "http://${gateway}:${status.httpPort}${path}"`;
    const onBridge = await runContainer(call('/from-foreign-bridge'));
    const other = await createNetwork('bridgecreds-other');
    const onOther = await runContainer(call('/from-foreign-network'), { network: other });
    // Served (wget exits 0 on a 2xx), not refused: as a page of another site is.
    expect(await exitCode(onBridge)).toBe(0);
    expect(await exitCode(onOther)).toBe(0);
    const foreign = remoteApi.requests.filter((r) => r.url.startsWith('/from-foreign'));
    expect(foreign.map((r) => r.url).sort()).toEqual(['/from-foreign-bridge', '/from-foreign-network']);
    for (const request of foreign) expect(request.headers['x-api-key'], request.url).toBeUndefined();
    // devproxy's container still gets it after the foreign calls.
    const count = remoteApi.requests.length;
    const later = await waitFor(() => remoteApi.requests.slice(count).find((r) => r.url === '/from-ours'), 30_000, 'another call of devproxy’s container');
    expect(later.headers['x-api-key']).toBe(SECRET);
  });

  it('knows a container that just started at once, and does not lend an address a stopped container freed to the next one', async () => {
    const net = await networkWithOwnSubnet('bridgecreds-reuse');
    const runtime = new LocalRuntime({ home, dockerHost: `unix://${socketPath}` });
    try {
      const labels = { [LABEL_REPO]: repo.main, [LABEL_WORKTREE]: `${repo.main}-bridgecreds-${RUN_ID}`, [LABEL_SERVICE]: 'ours', [LABEL_SLUG]: 'bridgecreds' };
      const first = await runContainer('exec sleep 300', { network: net, labels });
      const address = await addressOn(first, net);
      expect(await runtime.isOwnContainerAddress(address)).toBe(true);
      // The cache is trusted once an event feed is open: then a die is seen, and answers come at once.
      await waitFor(() => (runtime.isOwnContainerAddress(address) === true ? true : undefined), 30_000, 'the cache to answer from the event feed');

      // Started after the cache was read: a miss asks the engine before deciding.
      const second = await runContainer('exec sleep 300', { network: net, labels });
      expect(await runtime.isOwnContainerAddress(await addressOn(second, net))).toBe(true);

      await docker.getContainer(first).remove({ force: true });
      const foreign = await runContainer('exec sleep 300', { network: net, ip: address });
      expect(await addressOn(foreign, net)).toBe(address);
      expect(await runtime.isOwnContainerAddress(address)).toBe(false);
    } finally {
      await runtime.close();
      await removeOurs();
    }
  });
});
