/**
 * The Docker engine going away and coming back under a running LocalRuntime: availability is
 * reported as state (never a crash), containers that went down with it turn failed, the event
 * feed reconnects by itself, and the next reconcile brings the wanted services back.
 *
 * It stops the real dockerd, so it only runs when that dockerd is the one the test setup
 * starts (`--iptables=false`), never a developer's system engine, and only in CI (files run one
 * at a time there) or when DEVPROXY_TEST_ENGINE_RESTART=1: on a shared development machine it
 * would kill the containers of whatever else is running.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { validateConfig } from '../../profiles/validate-config.js';
import { LABEL_REPO } from '../../runtime/compose.js';
import { LocalRuntime } from '../../runtime/local-runtime.js';
import { DEFAULT_SOCKET_PATH, dockerSocketPath, ensureDockerEngine, runScoped, TEST_IMAGE } from '../setup/docker-engine.js';

const PID_FILE = '/var/run/docker.pid';

function ourDockerdPid(): number | undefined {
  if (dockerSocketPath() !== DEFAULT_SOCKET_PATH || !existsSync(PID_FILE)) return undefined;
  const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.includes('--iptables=false') ? pid : undefined;
  } catch {
    return undefined;
  }
}

let dir: string;
let home: string;
let docker: Docker;
let rt: LocalRuntime | undefined;

beforeAll(async () => {
  await ensureDockerEngine();
  docker = new Docker({ socketPath: dockerSocketPath() });
  dir = await mkdtemp(join(tmpdir(), 'devproxy-engine-restart-'));
  home = await mkdtemp(join(tmpdir(), 'devproxy-engine-restart-home-'));
}, 600_000);

afterAll(async () => {
  if (rt) {
    await rt.removeWorktree(dir).catch(() => undefined);
    await rt.close();
  }
  await ensureDockerEngine();
  const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${dir}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  await rm(dir, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
}, 600_000);

const allowed = Boolean(process.env.CI) || process.env.DEVPROXY_TEST_ENGINE_RESTART === '1';

it.skipIf(!allowed || ourDockerdPid() === undefined)(
  'survives a restart of the engine: failed while it is down, reconnects, and reconcile brings the service back',
  async () => {
    await writeFile(
      join(dir, 'docker-compose.yml'),
      JSON.stringify({
        version: '2.4',
        services: { web: { image: TEST_IMAGE, command: ['sh', '-c', 'mkdir -p /www && echo up > /www/index.html && exec busybox httpd -f -p 3000 -h /www'] } },
      }),
    );
    const validated = validateConfig(JSON.stringify({ name: runScoped('engine-restart'), services: { ui: { local: { compose: 'web', port: 3000 } } } }), 'devproxy.yaml');
    const config = validated.config!;
    expect(validated.errors).toEqual([]);
    const availability: boolean[] = [];
    rt = new LocalRuntime({ home, drainMs: 0, stopGraceMs: 1_000, memoryIntervalMs: 0, onChange: () => availability.push(rt?.dockerAvailable ?? false) });
    const spec = { repo: dir, path: dir, slug: 'restart', config, local: ['ui'] };
    await rt.reconcile(spec);
    expect(rt.status(dir)[0]?.state).toBe('healthy');
    expect(rt.dockerAvailable).toBe(true);

    process.kill(ourDockerdPid()!, 'SIGTERM');
    await expect.poll(() => rt!.dockerAvailable, { timeout: 60_000, interval: 100 }).toBe(false);
    await expect.poll(() => rt!.status(dir)[0]?.state, { timeout: 30_000 }).toBe('failed');
    expect(rt.healthyPorts(dir).size).toBe(0);

    await ensureDockerEngine();
    await expect.poll(() => rt!.dockerAvailable, { timeout: 60_000, interval: 100 }).toBe(true);
    expect(await rt.reconcile(spec)).toEqual({ start: ['ui'], stop: [], keep: [] });
    expect(rt.status(dir)[0]?.state).toBe('healthy');
    expect(availability).toContain(false);
  },
  600_000,
);
