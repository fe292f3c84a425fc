import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { serveH2Streams } from '../../proxy/h2-front.js';
import { createProxyHandler } from '../../proxy/server.js';
import type { ProxyHandler } from '../../proxy/types.js';
import type { RoutingTable } from '../../router/types.js';
import { local, route, tableOf } from '../helpers/routes.js';
import { createTestTls, FRAMING_BIG_BYTES, framingAnswers, startHttpUpstream, type TestTls, type Upstream } from '../helpers/upstreams.js';

const RICH = 'rich.feature-x.localhost';
const DOWN = 'down.feature-x.localhost';
const UNKNOWN = 'nope.feature-x.localhost';

/** Upstream requests to `/hang` that saw their connection close (the proxy aborted them). */
let hangsClosed = 0;
let hangsSeen = 0;

/** {@link framingAnswers}, and `/hang`, which never answers and counts the aborts it sees. */
function richHandler(req: IncomingMessage, res: ServerResponse): void {
  if (req.url !== '/hang') {
    framingAnswers(req, res);
    return;
  }
  hangsSeen++;
  req.socket.once('close', () => hangsClosed++);
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Fixture {
  tls: TestTls;
  upstream: Upstream;
  handler: ProxyHandler;
  /** node's compat objects for every stream, as before the h2 front. */
  compatPort: number;
  /** The h2 front: core stream API for bodiless streams. */
  frontPort: number;
}

let fx: Fixture;

function listen(server: http2.Http2SecureServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

beforeEach(async () => {
  hangsClosed = 0;
  hangsSeen = 0;
  const tls = await createTestTls([RICH, DOWN, UNKNOWN]);
  const upstream = await startHttpUpstream(richHandler);
  cleanups.push(() => upstream.close());
  const gone = await startHttpUpstream();
  await gone.close();
  const table: RoutingTable = tableOf(route(RICH, local(upstream.port)), route(DOWN, local(gone.port)));
  const handler = createProxyHandler({ getTable: () => table, httpPort: 8080, httpsPort: 8443, logger: { info: () => {}, warn: () => {}, error: () => {} } });
  cleanups.push(() => handler.close());
  const options = { cert: tls.certPem, key: tls.keyPem, settings: { enableConnectProtocol: true } };
  const compat = http2.createSecureServer(options, (req, res) => handler.handleRequest(req, res));
  const front = http2.createSecureServer(options, (req, res) => handler.handleRequest(req, res));
  serveH2Streams(front, handler);
  const compatPort = await listen(compat);
  const frontPort = await listen(front);
  cleanups.push(() => new Promise((resolve) => compat.close(resolve)));
  cleanups.push(() => new Promise((resolve) => front.close(resolve)));
  fx = { tls, upstream, handler, compatPort, frontPort };
});

function connect(port: number, host: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: fx.tls.caPem, servername: host });
    cleanups.push(() => session.destroy());
    session.once('remoteSettings', () => resolve(session));
    session.once('error', reject);
  });
}

interface Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: string;
}

function exchange(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let response: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (response = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const { date: _date, ...rest } = response;
      resolve({ headers: rest, trailers, body: Buffer.concat(chunks).toString('latin1') });
    });
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

describe('h2 front (core stream API) against node compat, same handler', () => {
  it('gives the same status, headers (but date), body and trailers for every kind of answer', async () => {
    const cases: Array<{ host: string; headers: http2.OutgoingHttpHeaders; body?: string }> = [
      { host: RICH, headers: { ':path': '/cookies' } },
      { host: RICH, headers: { ':path': '/cookies', ':method': 'HEAD' } },
      { host: RICH, headers: { ':path': '/cookies', ':method': 'DELETE' } },
      { host: RICH, headers: { ':path': '/cookies', ':method': 'POST', 'content-type': 'text/plain' }, body: 'hello' },
      { host: RICH, headers: { ':path': '/trailers', te: 'trailers' } },
      { host: RICH, headers: { ':path': '/chunked' } },
      { host: RICH, headers: { ':path': '/big' } },
      { host: RICH, headers: { ':path': '/no-content' } },
      { host: RICH, headers: { ':path': '/not-modified', 'if-none-match': '"v1"' } },
      { host: DOWN, headers: { ':path': '/', accept: 'text/html' } },
      { host: DOWN, headers: { ':path': '/', ':method': 'HEAD' } },
      { host: UNKNOWN, headers: { ':path': '/', accept: 'application/json' } },
    ];
    const sessions = new Map<string, http2.ClientHttp2Session>();
    const sessionOf = async (port: number, host: string): Promise<http2.ClientHttp2Session> => {
      const key = `${port} ${host}`;
      let session = sessions.get(key);
      if (session === undefined) {
        session = await connect(port, host);
        sessions.set(key, session);
      }
      return session;
    };
    for (const c of cases) {
      const viaCompat = await exchange(await sessionOf(fx.compatPort, c.host), { ':authority': c.host, ...c.headers }, c.body);
      const viaFront = await exchange(await sessionOf(fx.frontPort, c.host), { ':authority': c.host, ...c.headers }, c.body);
      expect({ case: c.headers, ...viaFront }).toEqual({ case: c.headers, ...viaCompat });
    }
    // The cases cover what the front must get right: a page, trailers, an empty 204 and a full body.
    const trailers = await exchange(await sessionOf(fx.frontPort, RICH), { ':authority': RICH, ':path': '/trailers', te: 'trailers' });
    expect(trailers.trailers['x-checksum']).toBe('abc123');
    const big = await exchange(await sessionOf(fx.frontPort, RICH), { ':authority': RICH, ':path': '/big' });
    expect(big.body.length).toBe(FRAMING_BIG_BYTES);
  });

  it('a client that resets its stream aborts the upstream request', async () => {
    const session = await connect(fx.frontPort, RICH);
    const stream = session.request({ ':authority': RICH, ':path': '/hang' });
    stream.on('error', () => {});
    await expect.poll(() => hangsSeen, { timeout: 5_000 }).toBe(1);
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await expect.poll(() => hangsClosed, { timeout: 5_000 }).toBe(1);
  });

  it('refuses to take over a server that already has another stream listener', () => {
    const server = http2.createSecureServer({ cert: fx.tls.certPem, key: fx.tls.keyPem }, () => {});
    server.on('stream', () => {});
    expect(() => serveH2Streams(server, fx.handler)).toThrow(/compat 'stream' listener alone/);
  });
});
