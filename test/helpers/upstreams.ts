/**
 * Real upstream servers for proxy tests, all on 127.0.0.1 port 0: plain HTTP, HTTPS with a CA of
 * its own, and WebSocket echo. Each records what it saw (connections, Host, SNI) for assertions.
 */
import http, { type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { ClientHttp2Session } from 'node:http2';
import https from 'node:https';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { createCertificateAuthority, issueLeafCertificate } from '../../certs/authority.js';

/** A raw TCP upstream: the server, its port and its open sockets. */
export interface TcpUpstream {
  port: number;
  /** Accepted sockets not closed yet. */
  open: Set<Socket>;
  server: Server;
}

/**
 * A TCP upstream on 127.0.0.1 that hands each accepted socket to `onSocket` as it is, for tests
 * that script an upstream's bytes; its sockets are destroyed and the server closed by `cleanups`.
 * Given `tls`, it is a TLS server serving that leaf (a scripted remote), and `onSocket` gets each
 * socket once its handshake is done.
 */
export async function startTcpUpstream(onSocket: (socket: Socket) => void, cleanups: Array<() => Promise<void> | void>, tls?: TestTls): Promise<TcpUpstream> {
  const open = new Set<Socket>();
  const accept = (socket: Socket): void => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  };
  const server = tls === undefined ? createServer(accept) : createTlsServer({ cert: tls.certPem, key: tls.keyPem }, accept);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, open, server };
}

/** What an upstream saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  /** TLS SNI (HTTPS upstreams only). */
  servername?: string;
}

/** A running upstream server. */
export interface Upstream {
  port: number;
  /** `http://127.0.0.1:<port>` or `https://127.0.0.1:<port>`. */
  origin: string;
  /** TCP connections accepted so far. */
  connections: number;
  requests: SeenRequest[];
  server: http.Server | https.Server;
  close(): Promise<void>;
}

/** Answers JSON `{ method, url, headers, body }` with the request body as text. */
export function echoHandler(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
    res.writeHead(200, { 'content-type': 'application/json', 'keep-alive': 'timeout=30', 'x-upstream': 'yes' });
    res.end(body);
  });
}

/** Size of {@link framingAnswers}' `/big` answer (with a Content-Length). */
export const FRAMING_BIG_BYTES = 1024 * 1024;

/**
 * Answers in every framing a proxy relays, by path: `/length` (`ok`), `/chunked` (two pieces a
 * turn apart), `/no-content` (204), `/not-modified` (304), `/trailers` (chunked, `x-checksum:
 * abc123`), `/cookies` (201 with two Set-Cookie, a Location, no body for HEAD), `/big`
 * ({@link FRAMING_BIG_BYTES} with a length), `/big-chunked` (300 KiB without one),
 * `/utf8-and-binary`; anything else a 404. For tests that compare two paths of the proxy.
 */
export function framingAnswers(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  switch (req.url) {
    case '/length':
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
      res.end('ok');
      return;
    case '/chunked':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first ');
      setImmediate(() => res.end('second'));
      return;
    case '/no-content':
      res.writeHead(204, { 'x-why': 'nothing' });
      res.end();
      return;
    case '/not-modified':
      res.writeHead(304, { etag: '"v1"' });
      res.end();
      return;
    case '/trailers':
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('body');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
      return;
    case '/cookies':
      res.writeHead(201, ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Type', 'text/plain', 'X-Custom', 'v', 'Location', '/next']);
      res.end(req.method === 'HEAD' ? undefined : `cookies ${req.method ?? ''}`);
      return;
    case '/big':
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': FRAMING_BIG_BYTES });
      res.end(Buffer.alloc(FRAMING_BIG_BYTES, 7));
      return;
    case '/big-chunked':
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.alloc(300 * 1024, 'x'));
      return;
    case '/utf8-and-binary':
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(Buffer.from([0, 1, 0xc3, 0xa9, 0xff, 0x0d, 0x0a, 0x80]));
      return;
    default:
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no such page');
  }
}

async function listenUpstream(server: http.Server | https.Server, scheme: 'http' | 'https', handler: RequestListener): Promise<Upstream> {
  const upstream: Upstream = {
    port: 0,
    origin: '',
    connections: 0,
    requests: [],
    server,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  server.on('connection', () => upstream.connections++);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const seen: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders };
    const servername = (req.socket as TLSSocket).servername;
    if (typeof servername === 'string') seen.servername = servername;
    upstream.requests.push(seen);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.port = (server.address() as AddressInfo).port;
  upstream.origin = `${scheme}://127.0.0.1:${upstream.port}`;
  return upstream;
}

/** Starts a plain HTTP upstream running `handler` (default: {@link echoHandler}). */
export function startHttpUpstream(handler: RequestListener = echoHandler): Promise<Upstream> {
  return listenUpstream(http.createServer(), 'http', handler);
}

/** A CA of its own and a leaf certificate for some DNS names, as PEM. */
export interface TestTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** Creates a throwaway CA and a leaf for `dnsNames` signed by it (devproxy's own minting, valid one day). */
export async function createTestTls(dnsNames: string[]): Promise<TestTls> {
  const ca = await createCertificateAuthority({ commonName: 'devproxy test CA', validityDays: 1 });
  const leaf = await issueLeafCertificate(ca, dnsNames.length > 0 ? dnsNames : ['localhost'], { validityDays: 1 });
  return { caPem: ca.certPem, certPem: leaf.certPem, keyPem: leaf.keyPem };
}

/** Starts an HTTPS upstream serving `tls`'s leaf; records Host and SNI of each request. */
export function startHttpsUpstream(tls: TestTls, handler: RequestListener = echoHandler): Promise<Upstream> {
  return listenUpstream(https.createServer({ cert: tls.certPem, key: tls.keyPem }), 'https', handler);
}

/** A WebSocket echo upstream; it accepts the first offered subprotocol and echoes every message. */
export interface WsUpstream extends Upstream {
  /** Host header of each upgrade request. */
  upgradeHosts: string[];
  /** Headers of each upgrade request, as the ws server received them. */
  upgradeHeaders: IncomingMessage['headers'][];
}

/** Starts a WebSocket echo server over HTTP, or HTTPS when `tls` is given. */
export async function startWsEcho(tls?: TestTls): Promise<WsUpstream> {
  const server = tls === undefined ? http.createServer() : https.createServer({ cert: tls.certPem, key: tls.keyPem });
  const upstream = (await listenUpstream(server, tls === undefined ? 'http' : 'https', (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('upgrade required\n');
  })) as WsUpstream;
  upstream.upgradeHosts = [];
  upstream.upgradeHeaders = [];
  const wss = new WebSocketServer({
    server,
    handleProtocols: (protocols) => protocols.values().next().value ?? false,
  });
  wss.on('headers', (_headers, req) => {
    upstream.upgradeHosts.push(req.headers.host ?? '');
    upstream.upgradeHeaders.push(req.headers);
  });
  wss.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  const closeServer = upstream.close;
  upstream.close = async () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    await closeServer();
  };
  return upstream;
}

/** A response as a test reads it. */
export interface TestResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** Options of {@link send}. */
export interface SendOptions {
  method?: string;
  path?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  /** The client's own address (another loopback one, 127.0.0.2, plays a peer that is not the host's address). */
  localAddress?: string;
}

/**
 * Sends one request to `127.0.0.1:<port>` with the Host header given (the proxy routes on it;
 * `*.localhost` does not resolve in Node here), on a fresh connection, and reads the whole body.
 */
export function send(port: number, host: string, options: SendOptions = {}): Promise<TestResponse> {
  // node:http frames a DELETE/GET body only when told its length.
  const length = options.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(options.body)) };
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers: { host, ...length, ...options.headers }, agent: false, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A GET of `path` on an open h2 session: its status and body. */
export function h2Get(session: ClientHttp2Session, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path });
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
    stream.on('error', reject);
  });
}

/** What a request through the proxy got: status, the route it took (`x-devproxy-route`), body. */
export interface RoutedResponse {
  status: number;
  route: string;
  body: string;
}

/** GET / through the proxy with a stable Host; never rejects (a failure is status -1 and its message). */
export async function getRouted(port: number, host: string): Promise<RoutedResponse> {
  try {
    const response = await send(port, host);
    return { status: response.status, route: String(response.headers['x-devproxy-route']), body: response.body };
  } catch (error) {
    return { status: -1, route: '', body: String(error) };
  }
}
