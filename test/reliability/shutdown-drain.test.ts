import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createProxyHandler, type ProxyHandlerOptions } from '../../proxy/server.js';
import { startHttpProxy } from '../../proxy/http-listener.js';
import type { RoutingTable } from '../../router/types.js';
import { local, route, tableOf } from '../helpers/routes.js';
import { send, startHttpUpstream, startWsEcho } from '../helpers/upstreams.js';
import { within } from './raw-client.js';
import { tally } from './tally.js';

/**
 * Stopping the proxy (what SIGTERM and `proxy stop` do) lets in-flight requests finish, closes
 * WebSockets, refuses new connections, and never takes longer than its drain bound.
 */
const drain = tally('shutdown-drain');

const HOST = 'api.feature-x.localhost';
const WS_HOST = 'ws.feature-x.localhost';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function proxy(table: RoutingTable, drainTimeoutMs?: number) {
  const options: ProxyHandlerOptions = { getTable: () => table, httpPort: 0, logger: { info() {}, warn() {}, error() {} } };
  const handler = createProxyHandler(options);
  const server = await startHttpProxy({ handler, port: 0, hosts: ['127.0.0.1'], ...(drainTimeoutMs === undefined ? {} : { drainTimeoutMs }) });
  options.httpPort = server.port;
  let closed = false;
  cleanups.push(async () => {
    if (!closed) await server.close();
    await handler.close();
  });
  return {
    port: server.port,
    close: async () => {
      closed = true;
      await server.close();
      await handler.close();
    },
  };
}

/** An upstream that answers `body` 400 ms after a request reaches it; `reached` tells when one has. */
async function slowUpstream(body: string): Promise<{ port: number; reached: Promise<void> }> {
  let arrived!: () => void;
  const reached = new Promise<void>((resolve) => (arrived = resolve));
  const up = await startHttpUpstream((_req, res) => {
    arrived();
    setTimeout(() => res.end(body), 400);
  });
  cleanups.push(() => up.close());
  return { port: up.port, reached };
}

describe('shutdown drains', () => {
  it('a request in flight when the proxy closes still gets its whole response (drain, not cut)', async () => {
    await drain.check(async () => {
      const up = await slowUpstream('slow but complete');
      const p = await proxy(tableOf(route(HOST, local(up.port))));
      const inFlight = send(p.port, HOST);
      await within(up.reached, 5_000, 'the request at the upstream');
      const closing = p.close();
      const res = await within(inFlight, 5_000, 'in-flight request');
      expect(res.status).toBe(200);
      expect(res.body).toBe('slow but complete');
      await within(closing, 5_000, 'close');
    });
  });

  it('new connections are refused once closing starts', async () => {
    await drain.check(async () => {
      const up = await slowUpstream('slow');
      const p = await proxy(tableOf(route(HOST, local(up.port))));
      const inFlight = send(p.port, HOST);
      await within(up.reached, 5_000, 'the request at the upstream');
      const closing = p.close();
      await expect(send(p.port, HOST)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      await inFlight;
      await closing;
    });
  });

  it('a request that outlives the drain bound is cut at the bound, not waited for', async () => {
    await drain.check(async () => {
      const up = await startHttpUpstream((_req, res) => {
        res.writeHead(200);
        res.write('start');
        // never ends (an SSE stream, a hung download)
      });
      cleanups.push(() => up.close());
      const p = await proxy(tableOf(route(HOST, local(up.port))), 300);
      const outcome = new Promise<string>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: p.port, headers: { host: HOST }, agent: false }, (res) => {
          res.on('data', () => {});
          res.on('close', () => resolve(res.complete ? 'complete' : 'cut'));
        });
        req.on('error', () => resolve('cut'));
      });
      await new Promise((r) => setTimeout(r, 100));
      await within(p.close(), 3_000, 'close with a never-ending response');
      expect(await within(outcome, 3_000, 'the stream to be cut')).toBe('cut');
    });
  });

  it('idle keep-alive connections do not hold the shutdown', async () => {
    await drain.check(async () => {
      const up = await startHttpUpstream((_req, res) => res.end('ok'));
      cleanups.push(() => up.close());
      const p = await proxy(tableOf(route(HOST, local(up.port))), 10_000);
      const agent = new http.Agent({ keepAlive: true });
      cleanups.push(() => agent.destroy());
      await new Promise<void>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: p.port, headers: { host: HOST }, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve());
        }).on('error', reject);
      });
      await within(p.close(), 2_000, 'close with an idle keep-alive client');
    });
  });

  it('open WebSockets are closed when the proxy stops, within the bound', async () => {
    await drain.check(async () => {
      const up = await startWsEcho();
      cleanups.push(() => up.close());
      const p = await proxy(tableOf(route(WS_HOST, local(up.port))), 10_000);
      const ws = new WebSocket(`ws://127.0.0.1:${p.port}/`, { headers: { host: WS_HOST } });
      cleanups.push(() => ws.terminate());
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const echoed = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
      ws.send('before shutdown');
      expect(await echoed).toBe('before shutdown');
      const closedEvent = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      await within(p.close(), 3_000, 'close with an open WebSocket');
      expect(typeof (await within(closedEvent, 3_000, 'the WebSocket to be closed'))).toBe('number');
    });
  });
});
