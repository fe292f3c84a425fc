/**
 * Port allocation and health probes of the local runtime, on real sockets on 127.0.0.1.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { once } from 'node:events';
import { connect, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DevproxyError } from '../../errors.js';
import { healthCheckFor, probe, waitHealthy } from '../../runtime/health.js';
import { isPortFree, parsePortRange, PORT_RANGE_END, PORT_RANGE_START, PortAllocator } from '../../runtime/ports.js';

let home: string;
const servers: Array<Server | TcpServer> = [];

async function listen<T extends Server | TcpServer>(server: T, port = 0): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return (server.address() as { port: number }).port;
}

async function freePort(): Promise<number> {
  const s = createTcpServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  servers.splice(servers.indexOf(s), 1);
  return port;
}

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-ports-'));
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  await rm(home, { recursive: true, force: true });
});

describe('PortAllocator', () => {
  it('gives each (worktree, service) its own port and the same one again, across instances', async () => {
    const a = new PortAllocator({ home });
    const p1 = await a.allocate('/w/one', 'api');
    const p2 = await a.allocate('/w/one', 'ui');
    const p3 = await a.allocate('/w/two', 'api');
    expect(new Set([p1, p2, p3]).size).toBe(3);
    expect(await a.allocate('/w/one', 'api')).toBe(p1);
    const b = new PortAllocator({ home });
    expect(await b.allocate('/w/two', 'api')).toBe(p3);
    expect(await b.lookup('/w/one', 'ui')).toBe(p2);
  });

  it('allocates concurrently without handing one port out twice', async () => {
    const a = new PortAllocator({ home });
    const ports = await Promise.all(Array.from({ length: 20 }, (_, i) => a.allocate(`/w/${i}`, 'svc')));
    expect(new Set(ports).size).toBe(20);
    const file = JSON.parse(await readFile(join(home, 'ports.json'), 'utf8')) as { ports: Record<string, number> };
    expect(Object.keys(file.ports)).toHaveLength(20);
  });

  it('skips ports something else listens on for a new pair, and never moves a persisted port (issue 12: 41002 → 41003)', async () => {
    const start = await freePort();
    const busy = createTcpServer();
    await listen(busy, start);
    const a = new PortAllocator({ home, range: { start, end: start + 50 } });
    const first = await a.allocate('/w', 'svc');
    expect(first).not.toBe(start);
    const squatter = createTcpServer();
    await listen(squatter, first);
    expect(await a.allocate('/w', 'svc')).toBe(first);
    expect(await new PortAllocator({ home, range: { start, end: start + 50 } }).allocate('/w', 'svc')).toBe(first);
  });

  it('a persisted port outside the range in force keeps its number (the default range moved from 41000-48999)', async () => {
    const old = await new PortAllocator({ home, range: { start: 41_000, end: 48_999 } }).allocate('/w', 'svc');
    expect(old).toBeGreaterThanOrEqual(41_000);
    const now = new PortAllocator({ home });
    expect(await now.allocate('/w', 'svc')).toBe(old);
    expect(await now.allocate('/w', 'other')).toBeLessThanOrEqual(PORT_RANGE_END);
  });

  it('parses DEVPROXY_LOCAL_PORTS, refusing what is not a usable range', () => {
    expect(parsePortRange('27000-27999')).toEqual({ start: 27_000, end: 27_999 });
    expect(parsePortRange(' 61000 - 61099 ')).toEqual({ start: 61_000, end: 61_099 });
    for (const bad of ['47000', '48000-47000', '80-90', '60000-70000', 'a-b']) {
      expect(() => parsePortRange(bad)).toThrow(/DEVPROXY_LOCAL_PORTS must be a range like 27000-27999/);
    }
  });

  it('forgets a removed worktree and writes the file atomically (no temp files left)', async () => {
    const a = new PortAllocator({ home });
    await a.allocate('/w/gone', 'api');
    const kept = await a.allocate('/w/kept', 'api');
    await a.releaseWorktree('/w/gone');
    expect(await a.lookup('/w/gone', 'api')).toBeUndefined();
    expect(await a.lookup('/w/kept', 'api')).toBe(kept);
    expect(await readdir(home)).toEqual(['ports.json']);
  });

  it('treats a torn ports.json as empty instead of crashing', async () => {
    await writeFile(join(home, 'ports.json'), '{"ports": {"/w\\u0000a');
    const port = await new PortAllocator({ home }).allocate('/w', 'a');
    expect(port).toBeGreaterThanOrEqual(PORT_RANGE_START);
  });

  it('says so when the range is exhausted', async () => {
    const port = await freePort();
    await listen(createTcpServer(), port);
    const error = await new PortAllocator({ home, range: { start: port, end: port } }).allocate('/w', 'svc').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DevproxyError);
    expect((error as DevproxyError).code).toBe('DEVPROXY_ERR_PORTS_EXHAUSTED');
  });

  it('isPortFree tells a listening port from a free one', async () => {
    const port = await listen(createTcpServer());
    expect(await isPortFree(port)).toBe(false);
    expect(await isPortFree(await freePort())).toBe(true);
  });

  it('a port an outgoing connection holds is not free: no server can listen on it (why the default range lies below the ephemeral ports)', async () => {
    const server = await listen(createTcpServer());
    const client = connect({ host: '127.0.0.1', port: server });
    await once(client, 'connect');
    try {
      const held = client.localPort!;
      expect(await isPortFree(held)).toBe(false);
      const error = await new PortAllocator({ home, range: { start: held, end: held } }).allocate('/w', 'svc').catch((e: unknown) => e);
      expect((error as DevproxyError).code).toBe('DEVPROXY_ERR_PORTS_EXHAUSTED');
    } finally {
      client.destroy();
    }
  });
});

describe('health probes', () => {
  it('HTTP: 2xx and 3xx are healthy, 4xx/5xx are not', async () => {
    const port = await listen(
      createHttpServer((req, res) => {
        const status = Number(req.url!.slice(1)) || 404;
        res.writeHead(status).end();
      }),
    );
    expect(await probe(port, healthCheckFor('/200'))).toBe(true);
    expect(await probe(port, healthCheckFor('302'))).toBe(true);
    expect(await probe(port, healthCheckFor('/404'))).toBe(false);
    expect(await probe(port, healthCheckFor('/503'))).toBe(false);
    // Any HTTP answer counts for http-any, even a 404 of `/`.
    expect(await probe(port, { kind: 'http-any' })).toBe(true);
  });

  it('http-any refuses a peer that accepts TCP but never answers HTTP (as docker-proxy does before the app listens)', async () => {
    const port = await listen(createTcpServer((socket) => socket.destroy()));
    expect(await probe(port, { kind: 'tcp' })).toBe(true);
    expect(await probe(port, { kind: 'http-any' })).toBe(false);
  });

  it('TCP: a refused connection is unhealthy', async () => {
    expect(await probe(await freePort(), { kind: 'tcp' })).toBe(false);
  });

  it('waitHealthy waits until the service answers, follows a changing port, and stops on abort', async () => {
    const port = await freePort();
    let asked = 0;
    const waiting = waitHealthy(healthCheckFor('/'), { port: () => (++asked < 3 ? undefined : port), intervalMs: 20, timeoutMs: 10_000 });
    setTimeout(() => void listen(createHttpServer((_, res) => res.end('ok')), port), 100);
    expect(await waiting).toBe(true);
    expect(asked).toBeGreaterThanOrEqual(3);

    const controller = new AbortController();
    const never = waitHealthy({ kind: 'tcp' }, { port: await freePort(), intervalMs: 20, timeoutMs: 60_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    expect(await never).toBe(false);
  });

  it('waitHealthy answers false after its timeout', async () => {
    expect(await waitHealthy({ kind: 'tcp' }, { port: await freePort(), intervalMs: 20, timeoutMs: 200 })).toBe(false);
  });
});
