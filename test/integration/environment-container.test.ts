import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { worktreeEnvironment } from '../../environment/worktree-env.js';
import { formatDiagnostic, type ProjectConfig } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { LABEL_REPO } from '../../runtime/compose.js';
import { LocalRuntime } from '../../runtime/local-runtime.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';
import { send, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { ensureDockerEngine, TEST_IMAGE } from '../setup/docker-engine.js';

/**
 * A container calling a worktree service by its stable URL on a real Docker engine: the local
 * runtime starts a compose service with the worktree environment the daemon passes, adding the
 * worktree's hostnames to `extra_hosts` itself (the compose file has none), and the
 * real daemon, listening on the bridge gateway too, routes the call by the live profile.
 */
let docker: Docker;
let home: string;
let runtimeHome: string;
let worktreeDir: string;
let repo: TempRepo;
let localApi: Upstream;
let remoteApi: Upstream;
let env: NodeJS.ProcessEnv;
let httpPort: number;
let runtime: LocalRuntime | undefined;

const cli = (args: string[]) => runCli(args, { cwd: repo.main, env });

const routed = () => ({ api: { local: { port: localApi.port }, remote: `http://127.0.0.1:${remoteApi.port}` } });

function config(services: Record<string, unknown>): ProjectConfig {
  const result = validateConfig(JSON.stringify({ name: 'contoso', services, profiles: { minimal: [], standard: ['api'] }, default: 'standard' }), 'devproxy.yaml');
  if (!result.config) throw new Error(result.errors.map(formatDiagnostic).join('\n'));
  return result.config;
}

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

/** The body a local instance answers on 127.0.0.1:<port>. */
async function get(port: number): Promise<string> {
  return (await send(port, `127.0.0.1:${port}`)).body.trim();
}

beforeAll(async () => {
  const engine = await ensureDockerEngine();
  docker = new Docker({ socketPath: engine.socketPath });
  const bridge = (await docker.getNetwork('bridge').inspect()) as { IPAM: { Config: Array<{ Gateway?: string }> } };
  // Docker's host-gateway is the default bridge's gateway: the proxy must listen there too.
  const gateway = bridge.IPAM.Config.find((c) => c.Gateway && !c.Gateway.includes(':'))?.Gateway;
  if (!gateway) throw new Error('the default bridge network has no IPv4 gateway');
  home = await mkdtemp(join(tmpdir(), 'devproxy-envct-home-'));
  runtimeHome = await mkdtemp(join(tmpdir(), 'devproxy-envct-runtime-'));
  worktreeDir = await mkdtemp(join(tmpdir(), 'devproxy-envct-wt-'));
  localApi = await startHttpUpstream((_req, res) => res.end('api local'));
  remoteApi = await startHttpUpstream((_req, res) => res.end('api remote'));
  repo = await createTempRepo({ 'devproxy.yaml': JSON.stringify({ name: 'contoso', services: routed(), profiles: { minimal: [], standard: ['api'] }, default: 'standard' }) });
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
  expect((await cli(['init'])).code).toBe(0);
  const started = await cli(['proxy', 'start', '--host', '127.0.0.1', '--host', gateway, '--json']);
  expect(started.code, started.stderr).toBe(0);
  httpPort = (JSON.parse(started.stdout) as { httpPort: number }).httpPort;
}, 600_000);

afterAll(async () => {
  if (runtime) {
    for (const path of runtime.worktreePaths()) await runtime.removeWorktree(path);
    await runtime.close();
  }
  if (repo) await cli(['proxy', 'stop']);
  if (docker) {
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${worktreeDir}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  }
  await Promise.all([localApi?.close(), remoteApi?.close()]);
  await repo?.cleanup();
  for (const dir of [home, runtimeHome, worktreeDir]) if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe('a compose service started with the worktree environment', () => {
  it('calls a worktree service by its stable URL and is routed local, then remote after a flip, in the same container', async () => {
    const withCaller = config({ ...routed(), caller: { local: { compose: 'caller', port: 3000 } } });
    const worktree = { config: withCaller, slug: 'contoso' };
    const compose = {
      services: {
        caller: { image: TEST_IMAGE, command: ['sh', '-c', CALLER_SCRIPT] },
      },
    };
    await writeFile(join(worktreeDir, 'docker-compose.yml'), JSON.stringify(compose));
    const environment = worktreeEnvironment({ ...worktree, local: ['api', 'caller'], httpPort, httpsPort: null, caPath: null }, { env: {}, baseDir: worktreeDir });
    expect(environment.API_URL).toBe(`http://api.contoso.localhost:${httpPort}`);

    runtime = new LocalRuntime({ home: runtimeHome, drainMs: 0, stopGraceMs: 1_000, startTimeoutMs: 60_000, memoryIntervalMs: 0 });
    await runtime.reconcile({ repo: worktreeDir, path: worktreeDir, slug: 'contoso', config: withCaller, local: ['caller'], env: environment });
    const port = runtime.healthyPorts(worktreeDir).get('caller');
    expect(port, JSON.stringify(runtime.status(worktreeDir))).toBeDefined();
    const container = runtime.status(worktreeDir).find((s) => s.service === 'caller')!.containerId;

    await waitFor(async () => ((await get(port!)) === 'api local' ? true : undefined), 30_000, 'the container to fetch "api local"');
    const flipped = await cli(['use', 'minimal']);
    expect(flipped.code, flipped.stderr).toBe(0);
    await waitFor(async () => ((await get(port!)) === 'api remote' ? true : undefined), 30_000, 'the container to fetch "api remote"');
    expect(runtime.status(worktreeDir).find((s) => s.service === 'caller')!.containerId).toBe(container);
  });
});
