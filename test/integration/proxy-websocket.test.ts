import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RoutingTable } from '../../router/types.js';
import { local, remote, route, tableOf } from '../helpers/routes.js';
import { createTestTls, startHttpUpstream, startWsEcho, type WsUpstream } from '../helpers/upstreams.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const API = 'api.feature-x.localhost';
const REMOTE_HOST = 'api-dev.test-remote.localhost';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function proxy(table: RoutingTable): Promise<number> {
  return (await proxyWithHandler(table)).port;
}

function proxyWithHandler(table: RoutingTable): Promise<TestProxy> {
  return startTestProxy(table, cleanups);
}

async function wsEcho(tls?: Parameters<typeof startWsEcho>[0]): Promise<WsUpstream> {
  const up = await startWsEcho(tls);
  cleanups.push(() => up.close());
  return up;
}

/** Opens a WebSocket through the proxy with the given Host; resolves once open. */
function connect(port: number, host: string, protocols: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/socket?x=1`, protocols, { headers: { host } });
    cleanups.push(() => socket.terminate());
    socket.once('open', () => resolve(socket));
    socket.once('unexpected-response', (_req, res) => reject(new Error(`unexpected ${res.statusCode}`)));
    socket.once('error', reject);
  });
}

function echo(socket: WebSocket, message: string): Promise<string> {
  return new Promise((resolve) => {
    socket.once('message', (data) => resolve(String(data)));
    socket.send(message);
  });
}

/** Sends a raw upgrade request and returns everything the proxy answered before closing. */
function rawUpgrade(port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
    socket.write(
      `GET /socket HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAccept: application/json\r\n\r\n',
    );
  });
}

/**
 * Sends a raw upgrade request with `extra` header lines and resolves with the answer's head as soon
 * as it is complete (a 101 keeps the socket open).
 */
function rawUpgradeHead(port: number, host: string, extra: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    cleanups.push(() => {
      socket.destroy();
    });
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end !== -1) resolve(text.slice(0, end));
    });
    socket.on('close', () => reject(new Error(`closed before an answer: ${JSON.stringify(text)}`)));
    socket.on('error', reject);
    socket.write(
      `GET /socket HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`,
    );
  });
}

describe('proxy WebSocket upgrades', () => {
  it('does not forward a header the upgrade request names in Connection (RFC 9110 §7.6.1)', async () => {
    const up = await wsEcho();
    const port = await proxy(tableOf(route(API, local(up.port))));
    const head = await rawUpgradeHead(port, API, 'Connection: Upgrade, X-Hop-Secret\r\nX-Hop-Secret: for-devproxy-only\r\nX-End-To-End: kept\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(up.upgradeHeaders).toHaveLength(1);
    const seen = up.upgradeHeaders[0];
    expect(seen?.['x-hop-secret']).toBeUndefined();
    expect(seen?.['x-end-to-end']).toBe('kept');
    expect(seen?.connection?.toLowerCase()).toBe('upgrade');
    expect(seen?.upgrade).toBe('websocket');
  });

  it('echoes through to a local ws server and keeps the negotiated subprotocol', async () => {
    const up = await wsEcho();
    const port = await proxy(tableOf(route(API, local(up.port))));
    const socket = await connect(port, `${API}:${port}`, ['chat.v2', 'chat.v1']);
    expect(socket.protocol).toBe('chat.v2');
    expect(await echo(socket, 'hello local')).toBe('hello local');
    expect(await echo(socket, 'twice')).toBe('twice');
    expect(up.upgradeHosts).toEqual([`${API}:${port}`]);
    expect(up.requests).toHaveLength(0);
  });

  it('echoes through to a remote wss server verified with its own CA, Host and SNI set to the remote', async () => {
    const tls = await createTestTls([REMOTE_HOST]);
    const dir = await mkdtemp(join(tmpdir(), 'devproxy-ws-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ca = join(dir, 'ca.pem');
    await writeFile(ca, tls.caPem);
    const up = await wsEcho(tls);
    const target = remote({ origin: up.origin, hostname: REMOTE_HOST, authority: REMOTE_HOST, basePath: '/v1', caFiles: [ca] });
    const port = await proxy(tableOf(route(API, target)));
    const socket = await connect(port, API, ['graphql-ws']);
    expect(socket.protocol).toBe('graphql-ws');
    expect(await echo(socket, 'hello remote')).toBe('hello remote');
    expect(up.upgradeHosts).toEqual([REMOTE_HOST]);
  });

  it('cuts live WebSocket tunnels when the handler closes', async () => {
    const up = await wsEcho();
    const { port, handler } = await proxyWithHandler(tableOf(route(API, local(up.port))));
    const socket = await connect(port, API, []);
    expect(await echo(socket, 'before close')).toBe('before close');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await handler.close();
    await closed;
    expect(socket.readyState).toBe(WebSocket.CLOSED);
  });

  it('answers a raw 502 when the remote certificate is not trusted', async () => {
    const tls = await createTestTls([REMOTE_HOST]);
    const up = await wsEcho(tls);
    const port = await proxy(tableOf(route(API, remote({ origin: up.origin, hostname: REMOTE_HOST }))));
    const answer = await rawUpgrade(port, API);
    expect(answer).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    expect(answer).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('answers a raw 502 naming the fix when the local target refuses the connection', async () => {
    const gone = await startHttpUpstream();
    await gone.close();
    const port = await proxy(tableOf(route(API, local(gone.port))));
    const answer = await rawUpgrade(port, API);
    expect(answer).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    expect(answer).toContain('x-devproxy-route: local');
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    expect(body.error.code).toBe('DEVPROXY_ERR_UPSTREAM_REFUSED');
    expect(body.error.hint).toContain('devproxy use standard --service api=remote');
  });

  it('relays a refused upgrade (non-101) as a plain response', async () => {
    const up = await startHttpUpstream((_req, res) => {
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('no sockets for you');
    });
    cleanups.push(() => up.close());
    const port = await proxy(tableOf(route(API, local(up.port))));
    const answer = await rawUpgrade(port, API);
    expect(answer).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(answer).toContain('no sockets for you');
  });

  it('relays a refused upgrade with the same header rules as any answer: no Connection-listed header, one x-devproxy-route', async () => {
    const up = await startHttpUpstream((_req, res) => {
      res.writeHead(403, { 'content-type': 'text/plain', connection: 'x-upstream-hop', 'x-upstream-hop': 'for-the-hop-only', 'x-devproxy-route': 'spoofed' });
      res.end('no sockets for you');
    });
    cleanups.push(() => up.close());
    const port = await proxy(tableOf(route(API, local(up.port))));
    const answer = await rawUpgrade(port, API);
    const head = answer.slice(0, answer.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).toMatch(/^http\/1\.1 403 forbidden\r\n/);
    expect(head).not.toContain('x-upstream-hop');
    expect(head.match(/^x-devproxy-route: .*$/gm)).toEqual(['x-devproxy-route: local']);
    expect(answer).toContain('no sockets for you');
  });

  it('answers unknown hosts with 404 and foreign hosts with 421 on the raw socket', async () => {
    const up = await wsEcho();
    const port = await proxy(tableOf(route(API, local(up.port))));
    expect(await rawUpgrade(port, 'nope.feature-x.localhost')).toMatch(/^HTTP\/1\.1 404 /);
    expect(await rawUpgrade(port, 'evil.com')).toMatch(/^HTTP\/1\.1 421 /);
    expect(up.upgradeHosts).toEqual([]);
  });
});
