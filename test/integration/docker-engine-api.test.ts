/**
 * devproxy's own Docker Engine API client (runtime/docker-engine-api.ts) and the observer built
 * on it, against the real engine: the containers here are made with dockerode, an independent
 * client, so a mistake in ours cannot hide in both sides of a check.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LABEL_REPO, LABEL_SERVICE, LABEL_SLUG, LABEL_WORKTREE } from '../../runtime/compose.js';
import { DockerApiError, DockerEngineApi } from '../../runtime/docker-engine-api.js';
import { DockerObserver, type OwnedContainerEvent } from '../../runtime/docker-observer.js';
import { ensureDockerEngine, TEST_IMAGE } from '../setup/docker-engine.js';

let docker: Docker;
let dockerHost: string;
let socketPath: string;
let dir: string;
/** The worktree label of every container this file makes (none exists on disk). */
const worktreePath = `/tmp/devproxy-engine-api-${randomUUID()}`;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  socketPath = (await ensureDockerEngine()).socketPath;
  dockerHost = `unix://${socketPath}`;
  docker = new Docker({ socketPath });
  dir = await mkdtemp(join(tmpdir(), 'devproxy-engine-api-'));
}, 600_000);

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  if (docker) {
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL_WORKTREE}=${worktreePath}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  }
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

/** A started container of the test image with devproxy's labels for `service`. */
async function ownedContainer(service: string, script: string, extra: Docker.ContainerCreateOptions = {}): Promise<string> {
  const container = await docker.createContainer({
    Image: TEST_IMAGE,
    Cmd: ['sh', '-c', script],
    Labels: { [LABEL_REPO]: worktreePath, [LABEL_WORKTREE]: worktreePath, [LABEL_SERVICE]: service, [LABEL_SLUG]: 'engine-api' },
    ...extra,
  });
  await container.start();
  return container.id;
}

function listen(server: Server, where: string | number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    if (typeof where === 'string') server.listen(where, resolve);
    else server.listen(where, '127.0.0.1', resolve);
  });
}

/** Reads a followed log stream until `until` shows up in it; answers all it read. */
async function readUntil(stream: Readable, until: string): Promise<string> {
  let text = '';
  for await (const chunk of stream) {
    text += (chunk as Buffer).toString('utf8');
    if (text.includes(until)) break;
  }
  return text;
}

describe('the Engine API client', { timeout: 120_000 }, () => {
  it('pings the engine, and a container that does not exist is a 404 carrying the engine\'s message', async () => {
    const api = new DockerEngineApi(dockerHost);
    await api.ping();
    const error = await api.json('/containers/devproxy-no-such-container/json').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DockerApiError);
    expect((error as DockerApiError).statusCode).toBe(404);
    expect((error as DockerApiError).message).toMatch(/^Docker engine answered 404 to GET \/containers\/devproxy-no-such-container\/json: No such container/);
  });

  it('reaches the engine through a tcp DOCKER_HOST (here a loopback relay to its socket)', async () => {
    const open: Socket[] = [];
    const relay = createServer((client) => {
      const engine = connect(socketPath);
      open.push(client, engine);
      client.pipe(engine).pipe(client);
      client.on('error', () => engine.destroy());
      engine.on('error', () => client.destroy());
    });
    await listen(relay, 0);
    cleanups.push(() => {
      // The client keeps its connection alive for reuse: end it rather than wait for its idle timeout.
      for (const socket of open) socket.destroy();
      return new Promise<void>((resolve) => relay.close(() => resolve()));
    });
    const port = (relay.address() as { port: number }).port;
    const api = new DockerEngineApi(`tcp://127.0.0.1:${port}`);
    await api.ping();
    const bridge = await api.json<{ Name: string }>('/networks/bridge');
    expect(bridge.Name).toBe('bridge');
  });

  it('fails with the socket\'s own error code where no engine listens, which the observer reports as DOCKER_UNAVAILABLE', async () => {
    const nowhere = `unix://${join(dir, 'no-engine.sock')}`;
    await expect(new DockerEngineApi(nowhere).ping()).rejects.toMatchObject({ code: 'ENOENT' });
    const observer = new DockerObserver({ dockerHost: nowhere });
    cleanups.push(() => observer.close());
    await expect(observer.ensureAvailable()).rejects.toMatchObject({
      code: 'DEVPROXY_ERR_DOCKER_UNAVAILABLE',
      message: expect.stringContaining(`Docker is not reachable at ${nowhere} (connect ENOENT`),
    });
    expect(observer.available).toBe(false);
  });

  it('gives up on an engine that accepts but never answers, with ETIMEDOUT', async () => {
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    const path = join(dir, 'silent.sock');
    await listen(silent, path);
    cleanups.push(() => {
      for (const socket of held) socket.destroy();
      return new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const error = await new DockerEngineApi(`unix://${path}`).json('/_ping', { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ETIMEDOUT', message: 'Docker engine did not answer GET /_ping within 200 ms' });
  });

  it('keeps a stream open with no idle timeout once the engine answered (a quiet event feed must not drop)', async () => {
    const events = await new DockerEngineApi(dockerHost).stream('/events', { query: { filters: { label: [`${LABEL_WORKTREE}=${worktreePath}`] } }, timeoutMs: 1_000 });
    cleanups.push(() => {
      events.destroy();
    });
    expect(events.statusCode).toBe(200);
    expect([0, undefined]).toContain((events.socket as Socket & { timeout?: number }).timeout);
  });
});

describe('the observer on the Engine API', { timeout: 180_000 }, () => {
  it('sees a devproxy container start and die, lists and inspects it, reads and follows its logs, and removes it', async () => {
    const events: OwnedContainerEvent[] = [];
    const observer = new DockerObserver({ dockerHost, onEvent: (e) => events.push(e) });
    cleanups.push(() => observer.close());
    observer.watch();
    await expect.poll(() => observer.available, { timeout: 30_000, interval: 50 }).toBe(true);

    const id = await ownedContainer('talker', 'echo "out 1"; echo "err 1" >&2; echo "out 2"; i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done', {
      ExposedPorts: { '3000/tcp': {} },
      HostConfig: { PortBindings: { '3000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    });
    await expect.poll(() => events.find((e) => e.action === 'start' && e.containerId === id), { timeout: 30_000, interval: 50 }).toEqual({
      action: 'start',
      containerId: id,
      worktreePath,
      service: 'talker',
    });

    expect(await observer.listOwned({ worktreePath })).toEqual([{ id, repo: worktreePath, worktreePath, service: 'talker', slug: 'engine-api', state: 'running' }]);
    expect(await observer.listOwned({ worktreePath, service: 'someone-else' })).toEqual([]);

    const port = await observer.hostPort(id, 3000);
    expect(port).toMatchObject({ hostNetwork: false, running: true });
    expect(port.port).toBeGreaterThan(0);
    expect(port.port).toBe(Number((await docker.getContainer(id).inspect()).NetworkSettings.Ports['3000/tcp']?.[0]?.HostPort));

    const memory = await observer.memoryBytes(id);
    expect(memory === undefined || memory > 0).toBe(true);

    await expect.poll(() => observer.lastLogLines(id, 100), { timeout: 30_000, interval: 100 }).toEqual(expect.arrayContaining(['tick 2']));
    const lines = await observer.lastLogLines(id, 100);
    // The engine copies stdout and stderr separately, so only each stream's own order is certain.
    expect(lines.filter((l) => !l.startsWith('tick'))).toEqual(expect.arrayContaining(['out 1', 'err 1', 'out 2']));
    expect(lines.filter((l) => l.startsWith('out'))).toEqual(['out 1', 'out 2']);
    expect(lines.filter((l) => !l.startsWith('tick')).length).toBe(3);
    expect((await observer.lastLogLines(id, 2)).length).toBe(2);

    const following = await observer.followLogs(id, 1_000);
    const last = lines.at(-1)!;
    const next = `tick ${Number(last.split(' ')[1]) + 3}`;
    const followed = await readUntil(following, `${next}\n`);
    following.destroy();
    const followedLines = followed.split('\n').filter((l) => l !== '');
    // The same log as the one-shot read, in the same order, then every tick up to the awaited one.
    expect(followedLines.filter((l) => !l.startsWith('tick'))).toEqual(lines.filter((l) => !l.startsWith('tick')));
    const ticks = followedLines.filter((l) => l.startsWith('tick'));
    expect(ticks).toEqual(ticks.map((_, i) => `tick ${i}`));
    expect(ticks.at(-1)).toBe(next);
    // Frame headers (stream byte, zeros, length) never leak into the text.
    expect(followed).not.toMatch(/[\0\x01\x02]/);

    await observer.stopAndRemove(id, 1);
    await expect.poll(() => events.some((e) => e.action === 'die' && e.containerId === id), { timeout: 30_000, interval: 50 }).toBe(true);
    expect(await observer.listOwned({ worktreePath })).toEqual([]);
    // Gone already: done, not an error.
    await observer.stopAndRemove(id, 1);
    await expect(observer.hostPort(id, 3000)).rejects.toMatchObject({ statusCode: 404 });
  });

  it('reads a TTY container\'s logs as they are (no frames), and reports a container that exited', async () => {
    const observer = new DockerObserver({ dockerHost });
    cleanups.push(() => observer.close());
    const id = await ownedContainer('tty', 'echo "tty line"; echo "tty done"; exit 3', { Tty: true });
    await expect.poll(async () => (await observer.hostPort(id, 3000)).running, { timeout: 30_000, interval: 100 }).toBe(false);
    expect(await observer.hostPort(id, 3000)).toEqual({ hostNetwork: false, running: false, exitCode: 3 });
    expect(await observer.lastLogLines(id, 10)).toEqual(['tty line', 'tty done']);
    const followed = await readUntil(await observer.followLogs(id, 10), 'tty done');
    expect(followed.replace(/\r/g, '')).toBe('tty line\ntty done\n');
    await observer.stopAndRemove(id, 1);
    expect(await observer.listOwned({ worktreePath, service: 'tty' })).toEqual([]);
  });

  it('removes the networks of a Compose project, and answers the bridge gateway', async () => {
    const observer = new DockerObserver({ dockerHost });
    cleanups.push(() => observer.close());
    const project = `devproxy-engine-api-${randomUUID().slice(0, 8)}`;
    const network = await docker.createNetwork({ Name: `${project}_default`, Labels: { 'com.docker.compose.project': project } });
    cleanups.push(() => network.remove().catch(() => undefined));
    await observer.removeComposeNetworks(project);
    expect(await docker.listNetworks({ filters: { label: [`com.docker.compose.project=${project}`] } })).toEqual([]);
    expect(await observer.hostGateway()).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });

  it('looks the bridge gateway up once per engine connection, and again after the engine came back', async () => {
    // A relay to the real engine that counts the lookups and can cut every connection, as an
    // engine restart does (the engine itself is never restarted here).
    const open: Socket[] = [];
    let lookups = 0;
    const relay = createServer((client) => {
      const engine = connect(socketPath);
      open.push(client, engine);
      client.on('data', (chunk: Buffer) => {
        lookups += chunk.toString('latin1').split('GET /networks/bridge ').length - 1;
      });
      client.pipe(engine).pipe(client);
      client.on('error', () => engine.destroy());
      engine.on('error', () => client.destroy());
    });
    const path = join(dir, 'counting-relay.sock');
    await listen(relay, path);
    cleanups.push(() => {
      for (const socket of open) socket.destroy();
      return new Promise<void>((resolve) => relay.close(() => resolve()));
    });
    const changes: boolean[] = [];
    let changed: (() => void) | undefined;
    const observer = new DockerObserver({
      dockerHost: `unix://${path}`,
      onAvailability: (available) => {
        changes.push(available);
        changed?.();
      },
    });
    cleanups.push(() => observer.close());
    const availability = (count: number): Promise<void> =>
      new Promise((resolve) => {
        changed = () => {
          if (changes.length >= count) resolve();
        };
        changed();
      });
    observer.watch();
    await availability(1);

    const [first, second] = await Promise.all([observer.hostGateway(), observer.hostGateway()]);
    const third = await observer.hostGateway();
    expect(first).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect([second, third]).toEqual([first, first]);
    expect(lookups).toBe(1);

    for (const socket of open.splice(0)) socket.destroy();
    await availability(3);
    expect(changes).toEqual([true, false, true]);
    expect(await observer.hostGateway()).toBe(first);
    expect(lookups).toBe(2);
  });
});
