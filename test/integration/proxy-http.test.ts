import http from 'node:http';
import http2 from 'node:http2';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { RoutingTable } from '../../router/types.js';
import { createProxyHandler, type ProxyHandlerOptions } from '../../proxy/server.js';
import { startHttpProxy } from '../../proxy/http-listener.js';
import { local, route, tableOf } from '../helpers/routes.js';
import { send, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const API = 'api.feature-x.localhost';
const MB = 1024 * 1024;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function upstream(handler?: http.RequestListener): Promise<Upstream> {
  const started = await startHttpUpstream(handler);
  cleanups.push(() => started.close());
  return started;
}


function proxy(table: RoutingTable, extra: Partial<ProxyHandlerOptions> = {}): Promise<TestProxy> {
  return startTestProxy(table, cleanups, extra);
}

/** Sends raw bytes and reads until the server closes or `until` matches. */
function rawExchange(port: number, data: string, until?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString();
      if (until?.test(text)) socket.destroy();
    });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
    socket.write(data);
  });
}

/**
 * Bytes a transfer has sent but its far end has not yet received, at their most: what the path
 * between them (the proxy, and the kernel's socket buffers) held. A proxy that reads without
 * backpressure holds what the slower receiver has not taken, up to the whole body.
 */
function inFlightMeter(): { sent(n: number): void; received(n: number): void; readonly most: number } {
  let sent = 0;
  let received = 0;
  let most = 0;
  return {
    sent(n) {
      sent += n;
      most = Math.max(most, sent - received);
    },
    received(n) {
      received += n;
    },
    get most() {
      return most;
    },
  };
}

/**
 * The most a backpressured path holds: the two TCP connections of a proxied transfer (client →
 * proxy → upstream), each with the sender's send buffer and the receiver's receive buffer at the
 * kernel's maxima, plus 8 MB for the streams' own buffers.
 */
async function kernelBufferBound(): Promise<number> {
  const maxOf = async (name: string) => Number((await readFile(`/proc/sys/net/ipv4/${name}`, 'utf8')).trim().split(/\s+/)[2]);
  return 2 * ((await maxOf('tcp_wmem')) + (await maxOf('tcp_rmem'))) + 8 * MB;
}

/** Reads `stream` slower than a loopback sender writes (a 20 ms pause every 4 MB), counting what arrives. */
function readSlowly(stream: Readable, onBytes: (n: number) => void): void {
  let sincePause = 0;
  stream.on('data', (c: Buffer) => {
    onBytes(c.length);
    sincePause += c.length;
    if (sincePause < 4 * MB) return;
    sincePause = 0;
    stream.pause();
    setTimeout(() => stream.resume(), 20);
  });
}

/** A body of `total` bytes generated on the fly from one reused 64 KiB chunk; `onChunk` sees each one's size. */
function generated(total: number, onChunk: (n: number) => void = () => undefined): Readable {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      onChunk(n);
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

describe('proxy forwarding to local targets', () => {
  it('round-trips GET, POST, PUT, DELETE and PROPFIND with bodies and keeps the stable Host', async () => {
    const up = await upstream();
    const p = await proxy(tableOf(route(API, local(up.port))));
    for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PROPFIND']) {
      const body = method === 'GET' ? undefined : `payload of ${method}`;
      const res = await send(p.port, `${API}:${p.port}`, { method, path: '/items?x=1', body });
      expect(res.status).toBe(200);
      expect(res.headers['x-devproxy-route']).toBe('local');
      const echo = JSON.parse(res.body) as { method: string; url: string; headers: Record<string, string>; body: string };
      expect(echo.method).toBe(method);
      expect(echo.url).toBe('/items?x=1');
      expect(echo.body).toBe(body ?? '');
      expect(echo.headers.host).toBe(`${API}:${p.port}`);
    }
  });

  it('strips hop-by-hop headers both ways, sets X-Forwarded-* and drops spoofed ones', async () => {
    const up = await upstream((req, res) => {
      res.writeHead(200, { 'x-upstream': 'yes', connection: 'x-upstream-hop', 'x-upstream-hop': '1', 'alt-svc': 'h3=":443"' });
      res.end(JSON.stringify(req.headers));
    });
    const p = await proxy(tableOf(route(API, local(up.port))));
    const res = await send(p.port, `${API}:${p.port}`, {
      headers: {
        'x-custom': 'kept',
        connection: 'x-secret-hop',
        'x-secret-hop': 'dropped',
        'keep-alive': 'timeout=5',
        'proxy-connection': 'keep-alive',
        'proxy-authorization': 'Basic abc',
        te: 'trailers, deflate',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'https',
        forwarded: 'for=6.6.6.6',
        'x-devproxy-route': 'remote',
      },
    });
    const seen = JSON.parse(res.body) as Record<string, string>;
    expect(seen['x-custom']).toBe('kept');
    for (const name of ['x-secret-hop', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'forwarded', 'x-devproxy-route']) {
      expect(seen[name], name).toBeUndefined();
    }
    expect(seen.te).toBe('trailers');
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-host']).toBe(`${API}:${p.port}`);
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-devproxy-hops']).toBe('1');
    expect(res.headers['x-upstream']).toBe('yes');
    expect(res.headers['x-upstream-hop']).toBeUndefined();
    expect(res.headers['alt-svc']).toBeUndefined();
    expect(res.headers['x-devproxy-route']).toBe('local');
  });

  it('relays upstream header bytes outside ASCII exactly as sent (a UTF-8 filename)', async () => {
    const utf8 = 'attachment; filename="café €.txt"';
    const up = await upstream((_req, res) => {
      // node:http writes header strings one byte per character: this sends the UTF-8 bytes.
      res.setHeader('content-disposition', Buffer.from(utf8).toString('latin1'));
      res.end('ok');
    });
    const p = await proxy(tableOf(route(API, local(up.port))));
    const text = await rawExchange(p.port, `GET / HTTP/1.1\r\nHost: ${API}:${p.port}\r\nConnection: close\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain(`content-disposition: ${utf8}\r\n`);
  });

  it('strips Expect: 100-continue (curl) before forwarding', async () => {
    const up = await upstream((req, res) => res.end(JSON.stringify({ expect: req.headers.expect ?? null })));
    const p = await proxy(tableOf(route(API, local(up.port))));
    const text = await rawExchange(
      p.port,
      `POST / HTTP/1.1\r\nHost: ${API}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nhello`,
    );
    expect(text).toContain('HTTP/1.1 200');
    expect(text).toContain('{"expect":null}');
  });

  it('relays response trailers when the client asked for them', async () => {
    const up = await upstream((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('body');
      res.addTrailers({ 'x-checksum': req.headers.te === 'trailers' ? 'abc123' : 'te-missing' });
      res.end();
    });
    const p = await proxy(tableOf(route(API, local(up.port))));
    const trailers = await new Promise<NodeJS.Dict<string>>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: p.port, headers: { host: API, te: 'trailers' }, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.trailers));
        })
        .on('error', reject);
    });
    expect(trailers['x-checksum']).toBe('abc123');
  });

  it('answers 508 when the hop counter is over the limit', async () => {
    const up = await upstream();
    const p = await proxy(tableOf(route(API, local(up.port))));
    const res = await send(p.port, API, { headers: { 'x-devproxy-hops': '5' } });
    expect(res.status).toBe(508);
    expect(JSON.parse(res.body).error.code).toBe('DEVPROXY_ERR_LOOP_DETECTED');
    expect(up.requests).toHaveLength(0);
  });

  it('reuses upstream connections across sequential requests (keep-alive)', async () => {
    const up = await upstream();
    const p = await proxy(tableOf(route(API, local(up.port))));
    for (let i = 0; i < 30; i++) {
      const res = await send(p.port, API, { method: i % 2 === 0 ? 'GET' : 'POST', body: i % 2 === 0 ? undefined : 'x' });
      expect(res.status).toBe(200);
    }
    expect(up.requests).toHaveLength(30);
    expect(up.connections).toBeLessThanOrEqual(2);
  });

  it('streams a 200 MB upload to a slow upstream without buffering it', async () => {
    const total = 200 * MB;
    const bound = await kernelBufferBound();
    expect(bound, 'the kernel\'s socket buffers hold as much as the body: the test could not tell').toBeLessThan(total);
    const meter = inFlightMeter();
    let received = 0;
    const up = await upstream((req, res) => {
      readSlowly(req, (n) => {
        received += n;
        meter.received(n);
      });
      req.on('end', () => res.end(String(received)));
    });
    const p = await proxy(tableOf(route(API, local(up.port))));
    const answer = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: p.port, method: 'POST', path: '/upload', headers: { host: API }, agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      generated(total, (n) => meter.sent(n)).pipe(req);
    });
    expect(Number(answer)).toBe(total);
    expect(received).toBe(total);
    console.info(`most in flight: ${(meter.most / MB).toFixed(1)} MB (bound ${(bound / MB).toFixed(0)} MB)`);
    expect(meter.most).toBeLessThan(bound);
  });

  it('streams a 200 MB download to a slow client without buffering it', async () => {
    const total = 200 * MB;
    const bound = await kernelBufferBound();
    expect(bound, 'the kernel\'s socket buffers hold as much as the body: the test could not tell').toBeLessThan(total);
    const meter = inFlightMeter();
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      generated(total, (n) => meter.sent(n)).pipe(res);
    });
    const p = await proxy(tableOf(route(API, local(up.port))));
    const received = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: p.port, path: '/big', headers: { host: API }, agent: false }, (res) => {
          let n = 0;
          readSlowly(res, (bytes) => {
            n += bytes;
            meter.received(bytes);
          });
          res.on('end', () => resolve(n));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    expect(received).toBe(total);
    console.info(`most in flight: ${(meter.most / MB).toFixed(1)} MB (bound ${(bound / MB).toFixed(0)} MB)`);
    expect(meter.most).toBeLessThan(bound);
  });

  it('aborts the upstream request when the client goes away mid-download, and keeps serving', async () => {
    let upstreamClosedEarly: () => void = () => {};
    const closedEarly = new Promise<void>((resolve) => (upstreamClosedEarly = resolve));
    const up = await upstream((req, res) => {
      if (req.url === '/endless') {
        const chunk = Buffer.alloc(16 * 1024, 0x62);
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const timer = setInterval(() => res.write(chunk), 5);
        res.on('close', () => {
          clearInterval(timer);
          if (!res.writableFinished) upstreamClosedEarly();
        });
        return;
      }
      res.end('still fine');
    });
    const p = await proxy(tableOf(route(API, local(up.port))));
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: p.port, path: '/endless', headers: { host: API }, agent: false }, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > 64 * 1024) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', () => {});
      setTimeout(() => reject(new Error('no data')), 10_000);
    });
    await closedEarly;
    const next = await send(p.port, API, { path: '/after' });
    expect(next.body).toBe('still fine');
    expect(p.warnings).toEqual([]);
  });

  it('aborts the upstream request when the client goes away mid-upload, writing no 5xx', async () => {
    let upstreamSawAbort: () => void = () => {};
    const sawAbort = new Promise<void>((resolve) => (upstreamSawAbort = resolve));
    let firstChunk: () => void = () => {};
    const gotFirstChunk = new Promise<void>((resolve) => (firstChunk = resolve));
    const up = await upstream((req, res) => {
      if (req.url !== '/upload') {
        res.end('still fine');
        return;
      }
      req.once('data', () => firstChunk());
      req.on('close', () => {
        if (!req.complete) upstreamSawAbort();
      });
    });
    const p = await proxy(tableOf(route(API, local(up.port))));
    const socket = net.connect(p.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(`POST /upload HTTP/1.1\r\nHost: ${API}\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(1000)}`);
    await gotFirstChunk;
    socket.destroy();
    await sawAbort;
    expect((await send(p.port, API, { path: '/after' })).body).toBe('still fine');
    expect(p.warnings).toEqual([]);
  });

  it('maps an upstream that sends no headers in time to 504', async () => {
    const up = await upstream(() => {
      // never answers
    });
    const p = await proxy(tableOf(route(API, local(up.port))), { upstreamTimeouts: { headersTimeoutMs: 200 } });
    const res = await send(p.port, API, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(504);
    const error = JSON.parse(res.body).error;
    expect(error.code).toBe('DEVPROXY_ERR_UPSTREAM_TIMEOUT');
    expect(error.message).toContain('UND_ERR_HEADERS_TIMEOUT');
    expect(res.headers['x-devproxy-route']).toBe('local');
  });
});

describe('startHttpProxy', () => {
  it('binds 127.0.0.1 and, when the machine has it, ::1 on the same port by default', async () => {
    const up = await upstream();
    const table = tableOf(route(API, local(up.port)));
    const handler = createProxyHandler({ getTable: () => table, httpPort: 0 });
    const server = await startHttpProxy({ handler, port: 0 });
    cleanups.push(async () => {
      await server.close();
      await handler.close();
    });
    expect((await send(server.port, API)).status).toBe(200);
    const hasIpv6Loopback = Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.address === '::1'));
    if (hasIpv6Loopback) {
      const status = await new Promise<number>((resolve, reject) => {
        http
          .get({ host: '::1', port: server.port, headers: { host: API }, agent: false }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
          .on('error', reject);
      });
      expect(status).toBe(200);
    }
  });
});

describe('proxy over HTTP/2 (compat API)', () => {
  it('routes on :authority, forwards no pseudo-headers and streams a POST without content-length', async () => {
    const up = await upstream();
    const table = tableOf(route(API, local(up.port)));
    const handler = createProxyHandler({ getTable: () => table, httpPort: 0 });
    const h2server = http2.createServer();
    h2server.on('request', handler.handleRequest);
    await new Promise<void>((resolve) => h2server.listen(0, '127.0.0.1', resolve));
    const port = (h2server.address() as AddressInfo).port;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(async () => {
      session.close();
      await new Promise<void>((resolve) => h2server.close(() => resolve()));
      await handler.close();
    });
    const stream = session.request({ ':method': 'POST', ':path': '/h2?q=1', ':authority': `${API}:${port}`, cookie: 'a=1' });
    stream.write('first ');
    setTimeout(() => stream.end('second'), 20);
    const { status, headers, body } = await new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      let text = '';
      let head: http2.IncomingHttpHeaders = {};
      stream.on('response', (h) => (head = h));
      stream.on('data', (c: Buffer) => (text += c.toString()));
      stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: text }));
      stream.on('error', reject);
    });
    expect(status).toBe(200);
    expect(headers['x-devproxy-route']).toBe('local');
    const echo = JSON.parse(body) as { method: string; url: string; headers: Record<string, string>; body: string };
    expect(echo.method).toBe('POST');
    expect(echo.url).toBe('/h2?q=1');
    expect(echo.body).toBe('first second');
    expect(echo.headers.host).toBe(`${API}:${port}`);
    expect(echo.headers.cookie).toBe('a=1');
    expect(Object.keys(echo.headers).filter((k) => k.startsWith(':'))).toEqual([]);
  });
});

describe('proxy answers of its own', () => {
  it('explains a refused local target in HTML and JSON, naming service, worktree, target and fix', async () => {
    const closed = await startHttpUpstream();
    const port = closed.port;
    await closed.close();
    const p = await proxy(tableOf(route(API, local(port))));
    const html = await send(p.port, API, { headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(html.status).toBe(502);
    expect(html.headers['content-type']).toContain('text/html');
    expect(html.headers['x-devproxy-route']).toBe('local');
    expect(html.body).toContain(`127.0.0.1:${port}`);
    expect(html.body).toContain('<code>devproxy use standard --service api=remote</code>');
    expect(html.body).toContain('<dd>api</dd>');
    expect(html.body).toContain('<dd>feature-x</dd>');
    expect(html.body).not.toMatch(/\n\s+at /);
    const json = await send(p.port, API, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(502);
    expect(JSON.parse(json.body)).toEqual({
      error: {
        code: 'DEVPROXY_ERR_UPSTREAM_REFUSED',
        message: `Nothing is listening on 127.0.0.1:${port}: is \`api\` of worktree \`feature-x\` running?`,
        hint: 'start it, or route it to its remote: `devproxy use standard --service api=remote`',
        service: 'api',
        worktree: 'feature-x',
        target: `127.0.0.1:${port}`,
      },
    });
  });

  it('lists the known hosts as links on the 404 page of an unrouted *.localhost name', async () => {
    const up = await upstream();
    const p = await proxy(tableOf(route(API, local(up.port)), route('ui.feature-x.localhost', local(up.port))));
    const res = await send(p.port, `nope.feature-x.localhost:${p.port}`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(404);
    expect(res.body).toContain(`<a href="http://${API}:${p.port}/">`);
    expect(res.body).toContain(`<a href="http://ui.feature-x.localhost:${p.port}/">`);
    const json = JSON.parse((await send(p.port, 'nope.feature-x.localhost')).body);
    expect(json.error.knownHosts).toEqual([`http://${API}:${p.port}/`, `http://ui.feature-x.localhost:${p.port}/`]);
  });

  it('refuses other hostnames and IP literals with 421 (DNS rebinding), and a missing Host with 400', async () => {
    const up = await upstream();
    const p = await proxy(tableOf(route(API, local(up.port))));
    for (const host of ['evil.com', `evil.com:${p.port}`, '127.0.0.1', `127.0.0.1:${p.port}`, '[::1]:80']) {
      const res = await send(p.port, host);
      expect(res.status, host).toBe(421);
      expect(JSON.parse(res.body).error.code).toBe('DEVPROXY_ERR_MISDIRECTED_HOST');
    }
    const noHost = await rawExchange(p.port, 'GET / HTTP/1.0\r\n\r\n');
    expect(noHost).toMatch(/^HTTP\/1\.1 400/);
    expect(up.requests).toHaveLength(0);
  });

  it('answers malformed requests with a bare 400', async () => {
    const p = await proxy(tableOf());
    const text = await rawExchange(p.port, 'NOT HTTP AT ALL\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    expect(text).not.toMatch(/\n\s+at /);
  });

  it('shows the problem of a route that cannot be served as a 502', async () => {
    const p = await proxy(
      tableOf(route(API, undefined, { problem: { message: 'api has no remote URL and is not running locally', hint: 'add `remote:` to api' } })),
    );
    const res = await send(p.port, API, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(502);
    expect(res.headers['x-devproxy-route']).toBe('local');
    expect(res.body).toContain('api has no remote URL and is not running locally');
    expect(res.body).toContain('add <code>remote:</code> to api');
  });

  it('serves a landing page on localhost listing every host', async () => {
    const up = await upstream();
    const p = await proxy(tableOf(route(API, local(up.port))));
    const json = JSON.parse((await send(p.port, `localhost:${p.port}`)).body);
    expect(json.hosts).toEqual([
      { host: API, url: `http://${API}:${p.port}/`, worktree: 'feature-x', service: 'api', mode: 'local' },
    ]);
    const html = await send(p.port, 'localhost', { headers: { accept: 'text/html' } });
    expect(html.body).toContain(`<a href="http://${API}:${p.port}/">${API}</a>`);
  });
});
