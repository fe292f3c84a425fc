/**
 * The local runtime against a real Docker engine and the real Compose CLI: containers of the
 * registry-free busybox image, serving HTTP with `busybox httpd`.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DevproxyError } from '../../errors.js';
import { formatDiagnostic, type ProjectConfig } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { LABEL_REPO, LABEL_WORKTREE } from '../../runtime/compose.js';
import { LocalRuntime, type WorktreeRuntimeSpec } from '../../runtime/local-runtime.js';
import { PORT_RANGE_END, PORT_RANGE_START } from '../../runtime/ports.js';
import { ensureDockerEngine, removeScopedNetworks, runScoped, TEST_IMAGE } from '../setup/docker-engine.js';

const MB = 1024 * 1024;
/** The project's name, so its Compose projects are `<name>-<slug>`: this run's own on the shared engine. */
const NAME = runScoped('rt-test');

/**
 * Busybox as a container's PID 1 ignores SIGTERM, so each stop waited out the grace period and
 * then killed it anyway: the test containers stop by SIGKILL at once, to the same end state.
 */
const STOP_AT_ONCE = { stop_signal: 'SIGKILL' };

/** A compose service running busybox httpd on `port`, answering `<name> <hostname>` at `/`. */
function httpd(name: string, port: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    image: TEST_IMAGE,
    ...STOP_AT_ONCE,
    command: ['sh', '-c', `echo "${name} starting"; mkdir -p /www && echo "${name} $$HOSTNAME" > /www/index.html && exec busybox httpd -f -p ${port} -h /www`],
    ...extra,
  };
}

const COMPOSE = {
  version: '2.4',
  services: {
    web: httpd('web', 3000, { ports: ['8080:3000'], container_name: 'fixed-web-name' }),
    api: httpd('api', 4000, { ports: ['4000'] }),
    hostnet: {
      image: TEST_IMAGE,
      ...STOP_AT_ONCE,
      network_mode: 'host',
      command: ['sh', '-c', 'mkdir -p /www && echo "hostnet $$PORT" > /www/index.html && exec busybox httpd -f -p $$PORT -h /www'],
    },
    crasher: { image: TEST_IMAGE, command: ['sh', '-c', 'echo "crasher: cannot open config"; exit 3'] },
    // Reads 200 MB into a shell variable: far over its 16 MB budget.
    hog: { image: TEST_IMAGE, ...STOP_AT_ONCE, command: ['sh', '-c', 'echo "hog: loading model"; x=$$(head -c 200000000 /dev/zero | busybox tr "\\0" a); echo "$${#x}"; sleep 600'] },
    ticker: { image: TEST_IMAGE, ...STOP_AT_ONCE, command: ['sh', '-c', 'i=0; while true; do echo "tick $$i"; i=$$((i+1)); sleep 0.1; done'] },
  },
};

/** The project's devproxy.yaml (JSON is YAML), through the real validator. */
function config(): ProjectConfig {
  const text = JSON.stringify({
    name: NAME,
    services: {
      ui: { local: { compose: 'web', port: 3000 }, health: '/', memory: '64MB' },
      api: { local: { compose: 'api', port: 4000 }, memory: '32MB' },
      edge: { local: { compose: 'hostnet', port: 3000 } },
      crash: { local: { compose: 'crasher', port: 5000 } },
      ghost: { local: { compose: 'not-in-compose', port: 80 } },
      hog: { local: { compose: 'hog', port: 80 }, memory: '16MB' },
      ticker: { local: { compose: 'ticker', port: 80 } },
    },
    profiles: { minimal: ['ui'] },
    default: 'minimal',
  });
  const result = validateConfig(text, 'devproxy.yaml');
  if (!result.config) throw new Error(result.errors.map(formatDiagnostic).join('\n'));
  return result.config;
}

function get(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

let docker: Docker;
let repo: string;
const runtimes: LocalRuntime[] = [];
const worktrees: string[] = [];
let home: string;

async function worktree(slug: string, compose: unknown = COMPOSE): Promise<WorktreeRuntimeSpec> {
  // `null`: no compose file at all.
  const path = await mkdtemp(join(tmpdir(), `devproxy-rt-${slug}-`));
  worktrees.push(path);
  if (compose !== null) await writeFile(join(path, 'docker-compose.yml'), JSON.stringify(compose));
  return { repo, path, slug, config: config(), local: [] };
}

function runtime(extra: Partial<ConstructorParameters<typeof LocalRuntime>[0]> = {}): LocalRuntime {
  const rt = new LocalRuntime({ home, drainMs: 0, stopGraceMs: 1_000, startTimeoutMs: 60_000, memoryIntervalMs: 0, ...extra });
  runtimes.push(rt);
  return rt;
}

async function containersOf(worktreePath: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${LABEL_WORKTREE}=${worktreePath}`] } });
}

function serviceOf(c: Docker.ContainerInfo): string {
  return c.Labels['dev.devproxy.service'] ?? '';
}

beforeAll(async () => {
  const engine = await ensureDockerEngine();
  docker = new Docker({ socketPath: engine.socketPath });
  repo = await mkdtemp(join(tmpdir(), 'devproxy-rt-repo-'));
}, 600_000);

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-rt-home-'));
});

afterEach(async () => {
  for (const rt of runtimes.splice(0)) {
    for (const path of rt.worktreePaths()) await rt.removeWorktree(path);
    await rt.close();
  }
  await rm(home, { recursive: true, force: true });
}, 120_000);

afterAll(async () => {
  // Whatever a failed test left behind: every container and network labelled with this run's repo.
  if (!docker) return;
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${repo}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  await removeScopedNetworks(docker, NAME);
  for (const path of [...worktrees, repo]) if (path) await rm(path, { recursive: true, force: true });
}, 120_000);

describe('LocalRuntime with compose services on a real engine', () => {
  it('starts only the local services, behind Docker-assigned loopback ports, with labels and memory limits', async () => {
    const rt = runtime();
    const w = await worktree('only-local');
    const progress: string[] = [];
    const t0 = Date.now();
    const plan = await rt.reconcile({ ...w, local: ['ui'] }, { onProgress: (s, state) => progress.push(`${s}:${state}`) });
    const startToHealthyMs = Date.now() - t0;
    console.info(`compose start → healthy (ui, one container): ${startToHealthyMs} ms`);
    expect(plan).toEqual({ start: ['ui'], stop: [], keep: [] });
    expect(progress).toEqual(['ui:starting', 'ui:healthy']);

    const containers = await containersOf(w.path);
    expect(containers.map(serviceOf)).toEqual(['ui']);
    expect(containers[0]!.Names[0]).not.toBe('/fixed-web-name');
    const info = await docker.getContainer(containers[0]!.Id).inspect();
    expect(info.HostConfig.Memory).toBe(64 * MB);
    expect(info.Config.Labels).toMatchObject({ 'dev.devproxy.repo': repo, 'dev.devproxy.worktree': w.path, 'dev.devproxy.slug': 'only-local' });
    const binding = info.NetworkSettings.Ports['3000/tcp']?.[0];
    expect(binding?.HostIp).toBe('127.0.0.1');
    expect(binding?.HostPort).not.toBe('8080');

    const port = rt.healthyPorts(w.path).get('ui');
    expect(port).toBe(Number(binding!.HostPort));
    expect((await get(port!)).body).toMatch(/^web [0-9a-f]{12}\n$/);
    expect(rt.status(w.path)).toEqual([expect.objectContaining({ service: 'ui', kind: 'compose', state: 'healthy', port, containerId: containers[0]!.Id })]);
  }, 180_000);

  it('a second reconcile performs the exact start/stop delta and never restarts a kept container', async () => {
    const rt = runtime();
    const w = await worktree('delta');
    await rt.reconcile({ ...w, local: ['ui'] });
    const [uiBefore] = await containersOf(w.path);
    const uiStartedAt = (await docker.getContainer(uiBefore!.Id).inspect()).State.StartedAt;

    expect(await rt.reconcile({ ...w, local: ['ui', 'api'] })).toEqual({ start: ['api'], stop: [], keep: ['ui'] });
    const both = await containersOf(w.path);
    expect(both.map(serviceOf).sort()).toEqual(['api', 'ui']);
    const uiAfter = both.find((c) => serviceOf(c) === 'ui')!;
    expect(uiAfter.Id).toBe(uiBefore!.Id);
    expect((await docker.getContainer(uiAfter.Id).inspect()).State.StartedAt).toBe(uiStartedAt);
    const apiPort = rt.healthyPorts(w.path).get('api');
    expect((await get(apiPort!)).body).toMatch(/^api /);

    const apiId = both.find((c) => serviceOf(c) === 'api')!.Id;
    const progress: string[] = [];
    expect(await rt.reconcile({ ...w, local: ['api'] }, { onProgress: (s, state) => progress.push(`${s}:${state}`) })).toEqual({
      start: [],
      stop: ['ui'],
      keep: ['api'],
    });
    expect(progress).toEqual(['ui:stopping', 'ui:stopped']);
    const after = await containersOf(w.path);
    expect(after.map((c) => c.Id)).toEqual([apiId]);
    expect([...rt.healthyPorts(w.path).keys()]).toEqual(['api']);

    expect(await rt.reconcile({ ...w, local: ['api'] }, { dryRun: true })).toEqual({ start: [], stop: [], keep: ['api'] });
    expect(await rt.reconcile({ ...w, local: ['ui'] }, { dryRun: true })).toEqual({ start: ['ui'], stop: ['api'], keep: [] });
    expect((await containersOf(w.path)).map((c) => c.Id)).toEqual([apiId]);
  }, 180_000);

  it('runs the same compose service in two worktrees at once without port clashes', async () => {
    const rt = runtime();
    const a = await worktree('twin-a');
    const b = await worktree('twin-b');
    await Promise.all([rt.reconcile({ ...a, local: ['ui'] }), rt.reconcile({ ...b, local: ['ui'] })]);
    const portA = rt.healthyPorts(a.path).get('ui');
    const portB = rt.healthyPorts(b.path).get('ui');
    expect(portA).toBeDefined();
    expect(portB).toBeDefined();
    expect(portA).not.toBe(portB);
    const [bodyA, bodyB] = await Promise.all([get(portA!), get(portB!)]);
    const [idA] = await containersOf(a.path);
    const [idB] = await containersOf(b.path);
    expect(bodyA.body).toBe(`web ${idA!.Id.slice(0, 12)}\n`);
    expect(bodyB.body).toBe(`web ${idB!.Id.slice(0, 12)}\n`);
    expect(idA!.Labels['com.docker.compose.project']).toBe(`${NAME}-twin-a`);
    expect(idB!.Labels['com.docker.compose.project']).toBe(`${NAME}-twin-b`);
  }, 180_000);

  it('removeWorktree leaves no container and no network behind', async () => {
    const rt = runtime();
    const w = await worktree('remove-me');
    await rt.reconcile({ ...w, local: ['ui', 'api'] });
    expect(await containersOf(w.path)).toHaveLength(2);
    await rt.removeWorktree(w.path);
    expect(await containersOf(w.path)).toEqual([]);
    expect(await docker.listNetworks({ filters: { label: [`com.docker.compose.project=${NAME}-remove-me`] } })).toEqual([]);
    expect(rt.status(w.path)).toEqual([]);
    expect(rt.worktreePaths()).not.toContain(w.path);
  }, 180_000);

  it('a container killed by hand turns failed, leaves healthyPorts and calls onChange', async () => {
    let changes = 0;
    const rt = runtime({ onChange: () => changes++ });
    const w = await worktree('killed');
    await rt.reconcile({ ...w, local: ['ui'] });
    expect(rt.healthyPorts(w.path).has('ui')).toBe(true);
    const [c] = await containersOf(w.path);
    const before = changes;
    const failed = new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (rt.status(w.path)[0]?.state === 'failed') {
          clearInterval(timer);
          resolve();
        }
      }, 50);
    });
    await docker.getContainer(c!.Id).kill();
    await failed;
    expect(changes).toBeGreaterThan(before);
    const [status] = rt.status(w.path);
    expect(status).toMatchObject({ service: 'ui', state: 'failed', detail: 'container exited with code 137' });
    expect(status!.lastLogLines).toContain('web starting');
    expect(rt.healthyPorts(w.path).has('ui')).toBe(false);

    // The next reconcile brings the wanted service back.
    expect(await rt.reconcile({ ...w, local: ['ui'] })).toEqual({ start: ['ui'], stop: [], keep: [] });
    expect(rt.status(w.path)[0]?.state).toBe('healthy');
  }, 180_000);

  it('a container that exits at once is failed with its last log lines', async () => {
    const rt = runtime();
    const w = await worktree('crash');
    const progress: string[] = [];
    await rt.reconcile({ ...w, local: ['crash'] }, { onProgress: (s, state) => progress.push(`${s}:${state}`) });
    expect(progress).toEqual(['crash:starting', 'crash:failed']);
    const [status] = rt.status(w.path);
    expect(status).toMatchObject({ state: 'failed', detail: expect.stringContaining('container exited') });
    expect(status!.lastLogLines).toContain('crasher: cannot open config');
  }, 180_000);

  it('a container over its memory budget is OOM-killed and says so', async () => {
    const rt = runtime();
    const w = await worktree('hog');
    await rt.reconcile({ ...w, local: ['hog'] });
    await expect.poll(() => rt.status(w.path)[0]?.state, { timeout: 30_000 }).toBe('failed');
    const [status] = rt.status(w.path);
    expect(status!.detail).toMatch(/^container exited with code 137 \(out of memory: raise `memory:`/);
    expect(status!.lastLogLines).toContain('hog: loading model');
    const [c] = await containersOf(w.path);
    const info = await docker.getContainer(c!.Id).inspect();
    expect(info.State.OOMKilled).toBe(true);
    expect(info.HostConfig.Memory).toBe(16 * MB);
  }, 180_000);

  it('follows a container\'s output as it is written', async () => {
    // The ticker never listens: stop waiting for health after a second, its output is the point.
    const rt = runtime({ startTimeoutMs: 1_000 });
    const w = await worktree('ticker');
    await rt.reconcile({ ...w, local: ['ticker'] });
    const controller = new AbortController();
    let seen = '';
    for await (const chunk of rt.followLogs(w.path, 'ticker', { lines: 1, signal: controller.signal })) {
      seen += chunk;
      const ticks = [...seen.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
      if (ticks.length >= 5) {
        controller.abort();
        // Consecutive numbers: live output in order, not a replay of the whole log.
        expect(ticks.slice(1, 5)).toEqual([ticks[1]!, ticks[1]! + 1, ticks[1]! + 2, ticks[1]! + 3]);
      }
    }
    expect(seen).toMatch(/tick \d+\n/);
  }, 180_000);

  it('host-network services run on the allocated port, injected as PORT', async () => {
    const rt = runtime();
    const w = await worktree('hostnet');
    await rt.reconcile({ ...w, local: ['edge'] });
    expect(rt.status(w.path)[0]).toMatchObject({ service: 'edge', state: 'healthy' });
    const port = rt.healthyPorts(w.path).get('edge');
    expect(port).toBeGreaterThanOrEqual(PORT_RANGE_START);
    expect(port).toBeLessThanOrEqual(PORT_RANGE_END);
    expect((await get(port!)).body).toBe(`hostnet ${port}\n`);
    const [c] = await containersOf(w.path);
    const info = await docker.getContainer(c!.Id).inspect();
    expect(info.HostConfig.NetworkMode).toBe('host');
    expect(info.NetworkSettings.Ports ?? {}).toEqual({});
  }, 180_000);

  it('resolves relative paths and .env of the user compose file against the worktree, not the derived file', async () => {
    const rt = runtime();
    const compose = {
      services: {
        site: {
          image: TEST_IMAGE,
          ...STOP_AT_ONCE,
          command: ['busybox', 'httpd', '-f', '-p', '3000', '-h', '/www'],
          volumes: ['${SITE_DIR}:/www:ro'],
          ports: ['3000:3000'],
        },
      },
    };
    const w = await worktree('relative', compose);
    await mkdir(join(w.path, 'public'));
    await writeFile(join(w.path, 'public', 'index.html'), 'from the worktree\n');
    await writeFile(join(w.path, '.env'), 'SITE_DIR=./public\n');
    const validated = validateConfig(JSON.stringify({ name: NAME, services: { site: { local: { compose: 'site', port: 3000 }, health: '/' } } }), 'devproxy.yaml');
    await rt.reconcile({ ...w, config: validated.config!, local: ['site'] });
    const port = rt.healthyPorts(w.path).get('site');
    expect((await get(port!)).body).toBe('from the worktree\n');
  }, 180_000);

  it('reports non-zero container memory from Docker stats', async () => {
    const rt = runtime();
    const w = await worktree('memory');
    await rt.reconcile({ ...w, local: ['ui'] });
    await rt.refreshMemory();
    const [status] = rt.status(w.path);
    console.info(`busybox httpd container memory: ${status!.memoryBytes} bytes`);
    expect(status!.memoryBytes).toBeGreaterThan(0);
    expect(status!.memoryBytes).toBeLessThan(64 * MB);
  }, 180_000);

  it('a restarted runtime adopts running containers instead of restarting them', async () => {
    const first = runtime();
    const w = await worktree('adopt');
    await first.reconcile({ ...w, local: ['ui'] });
    const [before] = await containersOf(w.path);
    await first.close();

    const second = runtime();
    expect(await second.reconcile({ ...w, local: ['ui'] })).toEqual({ start: [], stop: [], keep: ['ui'] });
    const [after] = await containersOf(w.path);
    expect(after!.Id).toBe(before!.Id);
    await expect.poll(() => second.status(w.path)[0]?.state, { timeout: 10_000 }).toBe('healthy');
  }, 180_000);

  it('restart replaces the container and waits until it is healthy', async () => {
    const rt = runtime();
    const w = await worktree('restart');
    await rt.reconcile({ ...w, local: ['ui'] });
    const [before] = await containersOf(w.path);
    await rt.restart(w.path, 'ui');
    const [after] = await containersOf(w.path);
    expect(after!.Id).not.toBe(before!.Id);
    expect(rt.status(w.path)[0]?.state).toBe('healthy');
    expect(await rt.logs(w.path, 'ui', { lines: 5 })).toContain('web starting');
  }, 180_000);
});

describe('LocalRuntime bad inputs', () => {
  it('an unknown compose service names the service and the compose file, and starts nothing', async () => {
    const rt = runtime();
    const w = await worktree('ghost');
    const error = await rt.reconcile({ ...w, local: ['ui', 'ghost'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DevproxyError);
    expect((error as DevproxyError).code).toBe('DEVPROXY_ERR_COMPOSE_UNKNOWN_SERVICE');
    expect((error as DevproxyError).message).toContain('"not-in-compose"');
    expect((error as DevproxyError).message).toContain(join(w.path, 'docker-compose.yml'));
    expect(await containersOf(w.path)).toEqual([]);
    expect(rt.status(w.path)).toEqual([]);
  });

  it('a missing compose file is a clear error naming where it looked', async () => {
    const rt = runtime();
    const w = await worktree('no-compose', null);
    const error = await rt.reconcile({ ...w, local: ['ui'] }).catch((e: unknown) => e);
    expect((error as DevproxyError).code).toBe('DEVPROXY_ERR_COMPOSE_FILE_NOT_FOUND');
    expect((error as DevproxyError).message).toContain(join(w.path, 'docker-compose.yml'));
  });

  it('Docker not reachable: a DevproxyError saying how to start it; Docker-free profiles still work', async () => {
    const rt = runtime({ dockerHost: `unix://${join(tmpdir(), 'devproxy-no-such-docker.sock')}` });
    const w = await worktree('no-docker');
    const error = await rt.reconcile({ ...w, local: ['ui'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DevproxyError);
    expect((error as DevproxyError).code).toBe('DEVPROXY_ERR_DOCKER_UNAVAILABLE');
    expect((error as DevproxyError).message).toContain('devproxy-no-such-docker.sock');
    expect((error as DevproxyError).hint).toContain('sudo systemctl start docker');
    expect(rt.dockerAvailable).toBe(false);
    // A profile with nothing local (all remote) reconciles without Docker.
    expect(await rt.reconcile({ ...w, local: [] })).toEqual({ start: [], stop: [], keep: [] });
    await rt.removeWorktree(w.path);
  });
});
