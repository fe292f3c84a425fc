import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { inProcessMinter } from '../../certs/in-process-minter.js';
import { createCertificateStore } from '../../certs/store.js';
import { startHttpsProxy } from '../../proxy/https-listener.js';
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
  // The upstream answers 500 ms after it got the request; `received` says the request is in flight.
  let onReceived: () => void = () => undefined;
  const received = new Promise<void>((resolve) => (onReceived = resolve));
  const api = await startHttpUpstream((_req, res) => {
    onReceived();
    setTimeout(() => res.end('slow but complete'), 500);
  });
  cleanups.push(() => api.close());
  const table = tableOf(route(API, local(api.port)));
  const options = { getTable: () => table, httpPort: 0, httpsPort: 0 };
  const handler = createProxyHandler(options);
  cleanups.push(() => handler.close());
  const certificates = createCertificateStore({ home, minter: inProcessMinter, isKnownName: (name) => table.routes.has(name) });
  const server = await startHttpsProxy({ handler, port: 0, hosts: ['127.0.0.1'], certificates });
  let closed = false;
  cleanups.push(() => (closed ? undefined : server.close()));
  options.httpsPort = server.port;
  const ca = await readFile(certificates.caPath, 'utf8');
  return {
    port: server.port,
    ca,
    received,
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
      await within(fx.received, 5_000, 'the request reaching the upstream');
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
      await within(fx.received, 5_000, 'the request reaching the upstream');
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

const slow = tally('https-slow-clients');
const HEADERS_TIMEOUT_MS = 500;

describe('HTTPS listener slow clients are cut', () => {
  async function slowServer() {
    const home = await mkdtemp(join(tmpdir(), 'devproxy-rel-https-'));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    const api = await startHttpUpstream((_req, res) => res.end('fast'));
    cleanups.push(() => api.close());
    const table = tableOf(route(API, local(api.port)));
    const handler = createProxyHandler({ getTable: () => table, httpPort: 0 });
    cleanups.push(() => handler.close());
    const certificates = createCertificateStore({ home, minter: inProcessMinter, isKnownName: (name) => table.routes.has(name) });
    const server = await startHttpsProxy({ handler, port: 0, hosts: ['127.0.0.1'], certificates, headersTimeoutMs: HEADERS_TIMEOUT_MS });
    cleanups.push(() => server.close());
    return { port: server.port, ca: await readFile(certificates.caPath, 'utf8') };
  }

  function closedWithin(socket: { once(event: 'close', listener: () => void): unknown }, what: string): Promise<unknown> {
    return within(new Promise<void>((resolve) => socket.once('close', () => resolve())), 10 * HEADERS_TIMEOUT_MS, what);
  }

  const cases: Array<[string, string, ((socket: tls.TLSSocket) => NodeJS.Timeout | undefined) | undefined]> = [
    ['https_idle_connection_never_cut: HTTP/1.1 over TLS, nothing after the handshake', 'http/1.1', undefined],
    ['HTTP/1.1 over TLS, headers trickled one byte at a time (slowloris)', 'http/1.1', (socket) => {
      socket.write(`GET / HTTP/1.1\r\nHost: ${API}\r\n`);
      return setInterval(() => socket.write('X'), 100);
    }],
    ['h2, no client preface after the handshake', 'h2', undefined],
  ];
  for (const [what, alpn, act] of cases) {
    it(`${what}: cut after the header timeout while a normal client is served`, async () => {
      await slow.check(async () => {
        const fx = await slowServer();
        const socket = tls.connect({ host: '127.0.0.1', port: fx.port, servername: API, ca: fx.ca, ALPNProtocols: [alpn] });
        socket.on('error', () => {});
        // Read, so the server's FIN is seen.
        socket.resume();
        cleanups.push(() => socket.destroy());
        await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
        const timer = act?.(socket);
        try {
          const normal = await new Promise<string>((resolve, reject) => {
            https.get({ host: '127.0.0.1', port: fx.port, servername: API, ca: fx.ca, headers: { host: API }, agent: false }, (res) => {
              let body = '';
              res.on('data', (c: Buffer) => (body += c.toString()));
              res.on('end', () => resolve(body));
            }).on('error', reject);
          });
          expect(normal).toBe('fast');
          await closedWithin(socket, what);
        } finally {
          clearInterval(timer);
        }
      });
    });
  }

  it('a TCP client that never sends a TLS hello is cut after the header timeout', async () => {
    await slow.check(async () => {
      const fx = await slowServer();
      const socket = connect(fx.port, '127.0.0.1');
      socket.on('error', () => {});
      socket.resume();
      cleanups.push(() => socket.destroy());
      await closedWithin(socket, 'a silent TCP client');
    });
  });

  it('an h2 session with a stream is not cut by the idle bound', async () => {
    await slow.check(async () => {
      const fx = await slowServer();
      const session = http2.connect(`https://127.0.0.1:${fx.port}`, { ca: fx.ca, servername: API });
      session.on('error', () => {});
      cleanups.push(() => session.destroy());
      const get = () =>
        new Promise<string>((resolve, reject) => {
          const stream = session.request({ ':path': '/', ':authority': API });
          let body = '';
          stream.on('data', (c: Buffer) => (body += c.toString()));
          stream.on('end', () => resolve(body));
          stream.on('error', reject);
        });
      expect(await get()).toBe('fast');
      await new Promise((r) => setTimeout(r, 3 * HEADERS_TIMEOUT_MS));
      expect(session.closed || session.destroyed).toBe(false);
      expect(await get()).toBe('fast');
    });
  });
});
