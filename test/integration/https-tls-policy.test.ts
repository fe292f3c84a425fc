import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startHttpsTestProxy } from '../helpers/proxy.js';
import { local, route, tableOf } from '../helpers/routes.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';

const UI = 'ui.feature-x.localhost';
const API = 'api.feature-x.localhost';
const FOREIGN = 'blob.contoso.localhost';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let port: number;
let caPem: string;
let upstream: Upstream;

beforeEach(async () => {
  upstream = await startHttpUpstream();
  cleanups.push(() => upstream.close());
  const proxy = await startHttpsTestProxy(tableOf(route(UI, local(upstream.port)), route(API, local(upstream.port)), route(FOREIGN, local(upstream.port))), cleanups);
  port = proxy.port;
  caPem = proxy.caPem;
});

/** Completes a TLS handshake with `options`, or returns the error that ended it. */
function handshake(options: tls.ConnectionOptions): Promise<{ protocol: string | null; cipher: string } | Error> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, ...options });
    socket.once('secureConnect', () => {
      resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().name });
      socket.destroy();
    });
    socket.once('error', (error) => resolve(error));
  });
}

describe('TLS policy of the HTTPS listener', () => {
  it.each([
    ['ECDHE-ECDSA-AES128-SHA', 'TLSv1.2'],
    ['ECDHE-ECDSA-AES256-SHA384', 'TLSv1.2'],
    ['ECDHE-ECDSA-AES128-SHA256', 'TLSv1.2'],
  ] as const)('refuses the CBC suite %s on a worktree certificate', async (cipher, version) => {
    const result = await handshake({ servername: UI, ciphers: cipher, minVersion: version, maxVersion: version });
    expect(result).toBeInstanceOf(Error);
  });

  it.each(['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305'])(
    'accepts the AEAD suite %s over TLS 1.2, on the worktree and on the no-SNI certificate',
    async (cipher) => {
      for (const servername of [UI, undefined]) {
        const result = await handshake({ ...(servername === undefined ? {} : { servername }), ciphers: cipher, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
        expect(result).toEqual({ protocol: 'TLSv1.2', cipher });
      }
    },
  );

  it('refuses TLS 1.1 and negotiates TLS 1.3 by default', async () => {
    expect(await handshake({ servername: UI, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).toBeInstanceOf(Error);
    expect(await handshake({ servername: UI })).toMatchObject({ protocol: 'TLSv1.3' });
  });
});

/** GET over HTTP/1.1 on a connection with SNI `servername`, asking for `host`. */
function h1Get(servername: string, host: string): Promise<{ status: number; body: string; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, servername, ca: caPem, path: '/', headers: { host: `${host}:${port}`, accept: 'application/json' }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, code: (JSON.parse(body) as { error?: { code?: string } }).error?.code }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** GETs over one HTTP/2 connection with SNI `servername`, one per `:authority`. */
async function h2Gets(servername: string, hosts: string[]): Promise<{ status: number; body: string }[]> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { servername, ca: caPem });
  cleanups.push(() => session.destroy());
  const results: { status: number; body: string }[] = [];
  for (const host of hosts) {
    results.push(
      await new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/', ':authority': `${host}:${port}`, accept: 'text/html' });
        let status = 0;
        let body = '';
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.setEncoding('utf8');
        stream.on('data', (c: string) => (body += c));
        stream.on('end', () => resolve({ status, body }));
        stream.on('error', reject);
        stream.end();
      }),
    );
  }
  return results;
}

describe('421 Misdirected Request', () => {
  it('answers 421 over HTTP/1.1 for a Host the connection\'s certificate does not cover, and serves one it covers', async () => {
    const foreign = await h1Get(UI, FOREIGN);
    expect(foreign.status).toBe(421);
    expect(foreign.code).toBe('DEVPROXY_ERR_MISDIRECTED_REQUEST');
    expect(foreign.body).toContain(`opened for ${UI}`);
    expect(foreign.body).toContain(`does not cover ${FOREIGN}`);
    expect((await h1Get(UI, API)).status).toBe(200);
    expect((await h1Get(FOREIGN, FOREIGN)).status).toBe(200);
    expect(upstream.requests).toHaveLength(2);
  });

  it('checks each request of a kept-alive HTTP/1.1 connection against the certificate that connection was served', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const results: { status: number; reused: boolean }[] = [];
    for (const host of [API, FOREIGN, UI, FOREIGN]) {
      results.push(
        await new Promise((resolve, reject) => {
          const req = https.request({ host: '127.0.0.1', port, servername: UI, ca: caPem, path: '/', headers: { host: `${host}:${port}` }, agent }, (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
          });
          req.on('error', reject);
          req.end();
        }),
      );
    }
    expect(results).toEqual([
      { status: 200, reused: false },
      { status: 421, reused: true },
      { status: 200, reused: true },
      { status: 421, reused: true },
    ]);
    expect(upstream.requests).toHaveLength(2);
  });

  it('answers 421 over HTTP/2 for an :authority outside the certificate, on the same connection that serves names the wildcard covers', async () => {
    const [sibling, foreign, own] = await h2Gets(UI, [API, FOREIGN, UI]);
    expect(sibling?.status).toBe(200);
    expect(foreign?.status).toBe(421);
    expect(foreign?.body).toContain('DEVPROXY_ERR_MISDIRECTED_REQUEST');
    expect(foreign?.body).toContain(`does not cover ${FOREIGN}`);
    expect(own?.status).toBe(200);
    expect(upstream.requests).toHaveLength(2);
  });

  it('answers 421 to a WebSocket upgrade over TLS for a host outside the certificate', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1',
        port,
        servername: UI,
        ca: caPem,
        agent: false,
        headers: { host: `${FOREIGN}:${port}`, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('upgrade', (_res, socket) => {
        socket.destroy();
        resolve(101);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(421);
  });

  it('answers 421 for a worktree host on a connection without SNI (it got the localhost certificate)', async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: caPem, checkServerIdentity: () => undefined });
    cleanups.push(() => session.destroy());
    const status = await new Promise<number>((resolve, reject) => {
      const stream = session.request({ ':path': '/', ':authority': `${UI}:${port}` });
      stream.on('response', (headers) => resolve(Number(headers[':status'])));
      stream.on('error', reject);
      stream.end();
    });
    expect(status).toBe(421);
  });
});
