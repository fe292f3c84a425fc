import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { createCertificateStore } from '../../certs/store.js';
import { startHttpsProxy } from '../../proxy/https-server.js';
import { createProxyHandler } from '../../proxy/server.js';
import { local, route, tableOf } from '../helpers/routes.js';
import { startHttpUpstream } from '../helpers/upstreams.js';
import { within } from './raw-client.js';
import { tally } from './tally.js';

/** The HTTPS listener drains like the plain one: in-flight HTTP/1.1 and h2 requests finish. */
const drain = tally('https-drain');

const API = 'api.feature-x.localhost';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function start() {
  const home = await mkdtemp(join(tmpdir(), 'devproxy-rel-https-'));
  cleanups.push(() => rm(home, { recursive: true, force: true }));
  const api = await startHttpUpstream((_req, res) => setTimeout(() => res.end('slow but complete'), 500));
  cleanups.push(() => api.close());
  const table = tableOf(route(API, local(api.port)));
  const options = { getTable: () => table, httpPort: 0, httpsPort: 0 };
  const handler = createProxyHandler(options);
  cleanups.push(() => handler.close());
  const certificates = createCertificateStore({ home, isKnownName: (name) => table.routes.has(name) });
  const server = await startHttpsProxy({ handler, port: 0, hosts: ['127.0.0.1'], certificates });
  let closed = false;
  cleanups.push(() => (closed ? undefined : server.close()));
  options.httpsPort = server.port;
  const ca = await readFile(certificates.caPath, 'utf8');
  return {
    port: server.port,
    ca,
    close: () => {
      closed = true;
      return server.close();
    },
  };
}

describe('HTTPS listener shutdown', () => {
  it('https_close_cut_http1_requests: an in-flight HTTP/1.1-over-TLS request finishes when the listener closes', async () => {
    await drain.check(async () => {
      const fx = await start();
      const inFlight = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port: fx.port, servername: API, ca: fx.ca, headers: { host: API }, agent: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      await new Promise((r) => setTimeout(r, 150));
      const closing = fx.close();
      expect(await within(inFlight, 5_000, 'the in-flight HTTPS/1.1 request')).toEqual({ status: 200, body: 'slow but complete' });
      await within(closing, 5_000, 'close');
    });
  });

  it('an in-flight h2 request finishes when the listener closes', async () => {
    await drain.check(async () => {
      const fx = await start();
      const session = http2.connect(`https://127.0.0.1:${fx.port}`, { ca: fx.ca, servername: API });
      session.on('error', () => {});
      cleanups.push(() => session.destroy());
      const inFlight = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ':path': '/', ':authority': API });
        let status = 0;
        let body = '';
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', (c: Buffer) => (body += c.toString()));
        stream.on('end', () => resolve({ status, body }));
        stream.on('error', reject);
      });
      await new Promise((r) => setTimeout(r, 150));
      const closing = fx.close();
      expect(await within(inFlight, 5_000, 'the in-flight h2 request')).toEqual({ status: 200, body: 'slow but complete' });
      await within(closing, 5_000, 'close');
    });
  });

  it('an idle TLS connection does not hold the close', async () => {
    await drain.check(async () => {
      const fx = await start();
      const socket = tls.connect({ host: '127.0.0.1', port: fx.port, servername: API, ca: fx.ca, ALPNProtocols: ['http/1.1'] });
      socket.on('error', () => {});
      cleanups.push(() => socket.destroy());
      await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
      await within(fx.close(), 3_000, 'close with an idle TLS client');
    });
  });
});
