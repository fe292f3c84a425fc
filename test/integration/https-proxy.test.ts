import { execFile } from 'node:child_process';
import { readFile, rm, mkdtemp, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { inProcessMinter } from '../../certs/in-process-minter.js';
import { createCertificateStore, ensureCertificateAuthority } from '../../certs/store.js';
import { homePaths } from '../../home-paths.js';
import { DevproxyError } from '../../errors.js';
import { startHttpsProxy } from '../../proxy/https-listener.js';
import { createProxyHandler } from '../../proxy/server.js';
import { loopbackLookup } from '../../proxy/upstream-pools.js';
import type { RoutingTable } from '../../router/types.js';
import { local, route, tableOf } from '../helpers/routes.js';
import { ensureTool } from '../helpers/tools.js';
import { h2Get, startHttpUpstream, startWsEcho } from '../helpers/upstreams.js';
import { encodeClientFrame, FrameReader, OPCODE, type Frame } from '../helpers/ws-frames.js';

const run = promisify(execFile);
const API = 'api.feature-x.localhost';
const WS = 'ws.feature-x.localhost';
const DOWN = 'down.feature-x.localhost';
const RICH = 'rich.feature-x.localhost';
/** Body size of the rich upstream's `/big`: many h2 flow-control windows. */
const BIG_BYTES = 8 * 1024 * 1024;

/** An upstream whose answers carry repeated fields, trailers, and a body larger than any window. */
function richHandler(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/trailers') {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    res.write('part');
    res.addTrailers({ 'x-checksum': req.headers.te === 'trailers' ? 'abc123' : 'te-missing' });
    res.end();
    return;
  }
  if (req.url === '/big') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG_BYTES });
    res.end(Buffer.alloc(BIG_BYTES, 7));
    return;
  }
  res.writeHead(201, ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Type', 'text/plain', 'X-Custom', 'v']);
  res.end('cookies');
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Fixture {
  port: number;
  caPem: string;
  caPath: string;
  home: string;
  warnings: string[];
}

let fx: Fixture;

/** A real proxy handler behind the HTTPS listener, routing to real local upstreams. */
async function start(): Promise<Fixture> {
  const home = await mkdtemp(join(tmpdir(), 'devproxy-https-'));
  cleanups.push(() => rm(home, { recursive: true, force: true }));
  const api = await startHttpUpstream();
  cleanups.push(() => api.close());
  const ws = await startWsEcho();
  cleanups.push(() => ws.close());
  // A port nothing listens on: bound and released by a throwaway upstream.
  const gone = await startHttpUpstream();
  await gone.close();
  const rich = await startHttpUpstream(richHandler);
  cleanups.push(() => rich.close());
  const table: RoutingTable = tableOf(route(API, local(api.port)), route(WS, local(ws.port)), route(DOWN, local(gone.port)), route(RICH, local(rich.port)));
  const warnings: string[] = [];
  const logger = { info: () => undefined, warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) };
  const options = { getTable: () => table, httpPort: 0, httpsPort: 0, logger };
  const handler = createProxyHandler(options);
  cleanups.push(() => handler.close());
  const certificates = createCertificateStore({ home, minter: inProcessMinter, isKnownName: (name) => table.routes.has(name), logger });
  const server = await startHttpsProxy({ handler, port: 0, hosts: ['127.0.0.1'], certificates, logger });
  cleanups.push(() => server.close());
  options.httpsPort = server.port;
  return { port: server.port, caPem: await readFile(certificates.caPath, 'utf8'), caPath: certificates.caPath, home, warnings };
}

beforeEach(async () => {
  fx = await start();
});

function curl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  // --noproxy: an https_proxy of the machine must not take loopback requests elsewhere.
  return run('curl', ['-sS', '-i', '--noproxy', '*', '--max-time', '10', '--cacert', fx.caPath, ...args], { timeout: 15_000 });
}

function resolveArg(host: string): string {
  return `${host}:${fx.port}:127.0.0.1`;
}

function h2Session(host: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${host}:${fx.port}`, { ca: fx.caPem, lookup: loopbackLookup });
    cleanups.push(() => session.destroy());
    session.once('remoteSettings', () => resolve(session));
    session.once('error', reject);
  });
}

describe('HTTPS listener with curl', () => {
  let noCurl: string | undefined;
  beforeAll(async () => {
    noCurl = await ensureTool('ensure-curl.sh', 'curl');
  }, 620_000);
  beforeEach((ctx) => {
    if (noCurl !== undefined) ctx.skip(noCurl);
  });

  it('serves a worktree hostname over HTTP/2 with a certificate curl trusts via --cacert', async () => {
    const { stdout } = await curl(['--http2', '--resolve', resolveArg(API), `https://${API}:${fx.port}/hello?x=1`]);
    expect(stdout).toMatch(/^HTTP\/2 200/);
    expect(stdout).toMatch(/x-devproxy-route: local/i);
    const body = JSON.parse(stdout.slice(stdout.indexOf('\r\n\r\n') + 4)) as { url: string; headers: Record<string, string> };
    expect(body.url).toBe('/hello?x=1');
    expect(body.headers['x-forwarded-proto']).toBe('https');
  });

  it('falls back to HTTP/1.1 when the client asks for it', async () => {
    const { stdout } = await curl(['--http1.1', '--resolve', resolveArg(API), `https://${API}:${fx.port}/one`]);
    expect(stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(stdout).toContain('"url":"/one"');
  });

  it('forwards an h2 POST body whole', async () => {
    const payload = 'x'.repeat(100_000);
    const { stdout } = await curl(['--http2', '--data-binary', payload, '--resolve', resolveArg(API), `https://${API}:${fx.port}/post`]);
    expect(stdout).toMatch(/^HTTP\/2 200/);
    const body = JSON.parse(stdout.slice(stdout.indexOf('\r\n\r\n') + 4)) as { method: string; body: string };
    expect(body.method).toBe('POST');
    expect(body.body).toHaveLength(payload.length);
  });

  it('refuses the handshake for a name devproxy does not route', async () => {
    const error = await curl(['--http2', '--resolve', resolveArg('evil.other.localhost'), `https://evil.other.localhost:${fx.port}/`]).then(
      () => undefined,
      (e: { code: number }) => e,
    );
    expect(error?.code).toBe(35); // CURLE_SSL_CONNECT_ERROR
    expect(fx.warnings.join('\n')).toContain('refused TLS handshake: no certificate for "evil.other.localhost"');
  });
});

describe('HTTPS listener with Node clients', () => {
  it('answers https.request (HTTP/1.1) with a certificate valid for the hostname', async () => {
    const result = await new Promise<{ status: number; body: string; version: string }>((resolve, reject) => {
      const req = https.request(
        { host: API, port: fx.port, path: '/node', ca: fx.caPem, lookup: loopbackLookup, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), version: res.httpVersion }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(result.status).toBe(200);
    expect(result.body).toContain('"url":"/node"');
    // node:https offers no ALPN: allowHTTP1 serves it HTTP/1.1.
    expect(result.version).toBe('1.1');
  });

  it('multiplexes concurrent requests over one http2 session', async () => {
    const session = await h2Session(API);
    expect((session.socket as tls.TLSSocket).alpnProtocol).toBe('h2');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => h2Get(session, `/s/${i}`)));
    results.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(r.body).toContain(`"url":"/s/${i}"`);
    });
  });

  it('forwards each stream of one h2 session with the client address and scheme (read once per session)', async () => {
    const session = await h2Session(API);
    for (const path of ['/first', '/second', '/third']) {
      const { status, body } = await h2Get(session, path);
      expect(status).toBe(200);
      const seen = (JSON.parse(body) as { headers: Record<string, string> }).headers;
      expect(seen['x-forwarded-for']).toBe('127.0.0.1');
      expect(seen['x-forwarded-proto']).toBe('https');
    }
  });

  it('relays an h2 answer whole: status, repeated Set-Cookie, trailers, HEAD, and a body of many windows', async () => {
    const session = await h2Session(RICH);
    const exchange = (headers: http2.OutgoingHttpHeaders): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; bytes: number; text: string }> =>
      new Promise((resolve, reject) => {
        const stream = session.request(headers);
        let response: http2.IncomingHttpHeaders = {};
        let trailers: http2.IncomingHttpHeaders = {};
        const chunks: Buffer[] = [];
        stream.on('response', (h) => (response = h));
        stream.on('trailers', (t) => (trailers = t));
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ headers: response, trailers, bytes: body.length, text: body.subarray(0, 64).toString() });
        });
        stream.on('error', reject);
      });
    const cookies = await exchange({ ':path': '/cookies' });
    expect(cookies.headers[':status']).toBe(201);
    expect(cookies.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(cookies.headers['x-custom']).toBe('v');
    expect(cookies.headers['x-devproxy-route']).toBe('local');
    expect(cookies.text).toBe('cookies');
    const head = await exchange({ ':path': '/cookies', ':method': 'HEAD' });
    expect(head.headers[':status']).toBe(201);
    expect(head.bytes).toBe(0);
    const withTrailers = await exchange({ ':path': '/trailers', te: 'trailers' });
    expect(withTrailers.text).toBe('part');
    expect(withTrailers.trailers['x-checksum']).toBe('abc123');
    const big = await exchange({ ':path': '/big' });
    expect(big.headers['content-length']).toBe(String(BIG_BYTES));
    expect(big.bytes).toBe(BIG_BYTES);
  });

  it('serves a client without SNI (an IP literal) the localhost certificate', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: fx.port, ca: fx.caPem, ALPNProtocols: ['h2'] });
    cleanups.push(() => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    expect(socket.authorized).toBe(true);
    expect(socket.getPeerX509Certificate()?.checkIP('127.0.0.1')).toBe('127.0.0.1');
  });
});

describe('WebSockets through the HTTPS listener', () => {
  it('echoes over wss with an HTTP/1.1 upgrade', async () => {
    const socket = new WebSocket(`wss://${WS}:${fx.port}/socket`, { ca: fx.caPem, lookup: loopbackLookup } as WebSocket.ClientOptions);
    cleanups.push(() => socket.terminate());
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const reply = await new Promise<string>((resolve) => {
      socket.once('message', (data) => resolve(String(data)));
      socket.send('over h1');
    });
    expect(reply).toBe('over h1');
  });

  /** Opens an RFC 8441 WebSocket on an h2 session; resolves with the response and a frame pump. */
  async function h2WebSocket(authority: string): Promise<{
    status: number;
    headers: http2.IncomingHttpHeaders;
    stream: http2.ClientHttp2Stream;
    next: () => Promise<Frame>;
    body: () => Promise<string>;
  }> {
    const session = await h2Session(WS);
    expect(session.remoteSettings.enableConnectProtocol).toBe(true);
    const stream = session.request(
      { ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/socket', ':authority': authority, 'sec-websocket-version': '13', 'sec-websocket-protocol': 'chat' },
      { endStream: false },
    );
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      stream.once('response', resolve);
      stream.once('error', reject);
    });
    const reader = new FrameReader();
    const queue: Frame[] = [];
    const waiters: ((frame: Frame) => void)[] = [];
    const raw: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => {
      raw.push(chunk);
      for (const frame of reader.push(chunk)) {
        const waiter = waiters.shift();
        if (waiter === undefined) queue.push(frame);
        else waiter(frame);
      }
    });
    return {
      status: Number(headers[':status']),
      headers,
      stream,
      next: () => {
        const frame = queue.shift();
        return frame === undefined ? new Promise((resolve) => waiters.push(resolve)) : Promise.resolve(frame);
      },
      body: () => new Promise((resolve) => stream.once('end', () => resolve(Buffer.concat(raw).toString()))),
    };
  }

  it('echoes over HTTP/2 extended CONNECT (RFC 8441), small and large frames', async () => {
    const ws = await h2WebSocket(`${WS}:${fx.port}`);
    expect(ws.status).toBe(200);
    expect(ws.headers['sec-websocket-protocol']).toBe('chat');
    expect(ws.headers['sec-websocket-accept']).toBeUndefined();
    expect(ws.headers['x-devproxy-route']).toBe('local');

    ws.stream.write(encodeClientFrame(OPCODE.text, 'over h2'));
    const first = await ws.next();
    expect(first.opcode).toBe(OPCODE.text);
    expect(first.payload.toString()).toBe('over h2');

    // Larger than h2's 64 KiB initial window and the 16 KiB stream buffers: flow control both ways.
    const big = Buffer.alloc(300_000, 7);
    ws.stream.write(encodeClientFrame(OPCODE.binary, big));
    const second = await ws.next();
    expect(second.opcode).toBe(OPCODE.binary);
    expect(second.payload.equals(big)).toBe(true);

    ws.stream.write(encodeClientFrame(OPCODE.close, Buffer.from([0x03, 0xe8])));
    expect((await ws.next()).opcode).toBe(OPCODE.close);
  });

  it('answers an h2 WebSocket CONNECT to a stopped upstream with the proxy error page', async () => {
    const ws = await h2WebSocket(`${DOWN}:${fx.port}`);
    const body = await ws.body();
    expect(ws.status).toBe(502);
    expect(ws.headers['x-devproxy-route']).toBe('local');
    expect(body).toContain('down');
  });

  it('does not report a WebSocket as open when the upstream answers 200 instead of 101', async () => {
    const ws = await h2WebSocket(`${API}:${fx.port}`);
    const body = await ws.body();
    expect(ws.status).toBe(502);
    expect(body).toBe('the upstream answered 200 instead of switching to WebSocket\n');
  });

  it('answers an h2 WebSocket CONNECT for an unknown host with 404', async () => {
    const ws = await h2WebSocket(`nope.feature-x.localhost:${fx.port}`);
    const body = await ws.body();
    expect(ws.status).toBe(404);
    expect(body).toContain('nope.feature-x.localhost');
  });

  it('refuses a plain h2 CONNECT tunnel with 405', async () => {
    const session = await h2Session(API);
    const stream = session.request({ ':method': 'CONNECT', ':authority': 'example.com:443' }, { endStream: false });
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve));
    expect(headers[':status']).toBe(405);
    stream.close();
  });
});

describe('startHttpsProxy', () => {
  it('reports a taken port as DEVPROXY_ERR_PORT_IN_USE naming --https-port', async () => {
    const handler = createProxyHandler({ getTable: () => tableOf(), httpPort: 0 });
    cleanups.push(() => handler.close());
    const certificates = createCertificateStore({ home: fx.home, minter: inProcessMinter, isKnownName: () => false });
    const error = await startHttpsProxy({ handler, port: fx.port, hosts: ['127.0.0.1'], certificates }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DevproxyError);
    expect((error as DevproxyError).code).toBe('DEVPROXY_ERR_PORT_IN_USE');
    expect((error as DevproxyError).hint).toContain('--https-port');
  });
});

describe('a corrupted CA', () => {
  it('stops the HTTPS listener from starting with DEVPROXY_ERR_CA_CORRUPT and leaves the file alone', async () => {
    const home = await mkdtemp(join(tmpdir(), 'devproxy-https-bad-'));
    cleanups.push(() => rm(home, { recursive: true, force: true }));
    await ensureCertificateAuthority(home, inProcessMinter);
    await writeFile(homePaths(home).caKey, 'not a key');
    const handler = createProxyHandler({ getTable: () => tableOf(), httpPort: 0 });
    cleanups.push(() => handler.close());
    const certificates = createCertificateStore({ home, minter: inProcessMinter, isKnownName: () => true });
    const error = await startHttpsProxy({ handler, port: 0, hosts: ['127.0.0.1'], certificates }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DevproxyError);
    expect((error as DevproxyError).code).toBe('DEVPROXY_ERR_CA_CORRUPT');
    expect((error as DevproxyError).message).toContain('ca-key.pem is not a PEM private key');
    expect(await readFile(homePaths(home).caKey, 'utf8')).toBe('not a key');
  });
});
