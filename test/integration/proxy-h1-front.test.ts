import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FrontRequest, takeOverConnections } from '../../proxy/h1-front.js';
import type { ClientRequest } from '../../proxy/proxy-core.js';
import type { ClientResponse } from '../../proxy/own-answers.js';
import type { ProxyHandler } from '../../proxy/types.js';
import { waitFor } from '../helpers/git-repo.js';
import { closeFrontServer, startTestProxy } from '../helpers/proxy.js';
import { local, route, tableOf } from '../helpers/routes.js';
import { framingAnswers, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';

const API = 'api.feature-x.localhost';
const DOWN = 'down.feature-x.localhost';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface RawResponse {
  /** Status line and fields, each `Date` value replaced by `<date>`. */
  head: string;
  /** Body, latin1, without chunk framing (whose chunk sizes follow the reads of each hop). */
  body: string;
  /** Trailer section of a chunked body as sent, '' without one. */
  trailers: string;
}

/**
 * Reads `methods.length` responses off `socket`, framed as HTTP/1.1 says (HEAD, 1xx/204/304 have
 * no body; then Content-Length, chunked, or until close).
 */
function readResponses(socket: net.Socket, methods: string[], onResponse?: (count: number) => void): Promise<RawResponse[]> {
  return new Promise((resolve, reject) => {
    let data = '';
    const responses: RawResponse[] = [];
    const parse = (closed: boolean): void => {
      while (responses.length < methods.length) {
        const end = data.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = data.slice(0, end + 4);
        const status = Number(head.slice(9, 12));
        const method = methods[responses.length] as string;
        let bodyEnd = end + 4;
        let body: string | undefined;
        let trailers = '';
        const length = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (method === 'HEAD' || status === 204 || status === 304 || status < 200) {
          // no body
        } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
          let at = end + 4;
          body = '';
          for (;;) {
            const line = data.indexOf('\r\n', at);
            if (line === -1) return;
            const size = parseInt(data.slice(at, line), 16);
            if (size === 0) {
              const trailerEnd = data.indexOf('\r\n\r\n', line - 2);
              if (trailerEnd === -1) return;
              trailers = data.slice(line + 2, trailerEnd + 2);
              bodyEnd = trailerEnd + 4;
              break;
            }
            if (line + 2 + size + 2 > data.length) return;
            body += data.slice(line + 2, line + 2 + size);
            at = line + 2 + size + 2;
          }
        } else if (length !== null) {
          bodyEnd = end + 4 + Number(length[1]);
          if (data.length < bodyEnd) return;
        } else {
          if (!closed) return;
          bodyEnd = data.length;
        }
        responses.push({ head: head.replace(/\r\nDate: [^\r]*/g, '\r\nDate: <date>'), body: body ?? data.slice(end + 4, bodyEnd), trailers });
        data = data.slice(bodyEnd);
        onResponse?.(responses.length);
      }
      socket.destroy();
      resolve(responses);
    };
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      parse(false);
    });
    socket.on('close', () => {
      parse(true);
      if (responses.length < methods.length) reject(new Error(`connection closed after ${responses.length} of ${methods.length} responses: ${JSON.stringify(data)}`));
    });
    socket.on('error', reject);
  });
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

/** Sends `text` in one write and reads the responses to `methods`. */
async function exchange(port: number, text: string, methods: string[]): Promise<RawResponse[]> {
  const socket = await connect(port);
  const responses = readResponses(socket, methods);
  socket.write(text, 'latin1');
  return responses;
}

function requestText(method: string, path: string, host: string | undefined, extra: string[] = []): string {
  const lines = [`${method} ${path} HTTP/1.1`];
  if (host !== undefined) lines.push(`Host: ${host}`);
  return `${[...lines, ...extra].join('\r\n')}\r\n\r\n`;
}

describe("devproxy's HTTP/1.1 front", () => {
  it('serves a whole bodiless head itself and hands node:http a pipelined pair, a split head and a body', async () => {
    const served: string[] = [];
    const handler: ProxyHandler = {
      handleRequest(req: ClientRequest, res: ClientResponse) {
        served.push(`${req.method} ${req.url} ${req instanceof FrontRequest ? 'front' : 'node'}`);
        const body = req as IncomingMessage;
        const answer = (): void => {
          (res as ServerResponse).writeHead(200, ['content-length', '2']);
          (res as ServerResponse).end('ok');
        };
        if (req instanceof FrontRequest) answer();
        else body.on('data', () => undefined).on('end', answer);
      },
      handleUpgrade: () => undefined,
      handleWebSocketConnect: () => undefined,
      close: async () => undefined,
    };
    const server = http.createServer();
    // Told when the server side has read a connection's first bytes (a listener ahead of the front's).
    const firstReads: Array<() => void> = [];
    server.on('connection', (socket: net.Socket) => socket.once('data', () => firstReads.shift()?.()));
    const front = takeOverConnections(server, handler, 5_000);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => handler.handleRequest(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => closeFrontServer(server, front));
    const port = (server.address() as AddressInfo).port;
    await exchange(port, requestText('GET', '/one', 'a.localhost'), ['GET']);
    await exchange(port, requestText('GET', '/two', 'a.localhost') + requestText('GET', '/three', 'a.localhost'), ['GET', 'GET']);
    await exchange(port, requestText('POST', '/four', 'a.localhost', ['Content-Length: 3']) + 'abc', ['POST']);
    // One connection: served by the front, then a body moves it to node for good.
    await exchange(port, requestText('GET', '/five', 'a.localhost'), ['GET']);
    firstReads.length = 0;
    const split = await connect(port);
    const splitAnswer = readResponses(split, ['GET']);
    const firstHalfRead = new Promise<void>((resolve) => firstReads.push(resolve));
    split.write('GET /six HTTP/1.1\r\nHost: a.local');
    // The rest of the head comes in a later read.
    await firstHalfRead;
    split.write('host\r\n\r\n');
    await splitAnswer;
    expect(served).toEqual(['GET /one front', 'GET /two node', 'GET /three node', 'POST /four node', 'GET /five front', 'GET /six node']);
  });

  it('writes the bytes node:http writes for the same answers (compared request by request, front against a pipelined pair node serves)', async () => {
    const upstream: Upstream = await startHttpUpstream(framingAnswers);
    cleanups.push(() => upstream.close());
    const closedPort = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const port = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(port));
      });
    });
    const proxy = await startTestProxy(tableOf(route(API, local(upstream.port)), route(DOWN, local(closedPort))), cleanups);
    const cases: Array<[string, string]> = [
      ['GET', requestText('GET', '/length', API)],
      ['GET', requestText('GET', '/chunked', API)],
      ['HEAD', requestText('HEAD', '/length', API)],
      ['HEAD', requestText('HEAD', '/chunked', API)],
      ['GET', requestText('GET', '/no-content', API)],
      ['GET', requestText('GET', '/not-modified', API, ['If-None-Match: "v1"'])],
      ['GET', requestText('GET', '/trailers', API, ['TE: trailers'])],
      ['GET', requestText('GET', '/cookies', API)],
      ['GET', requestText('GET', '/big', API)],
      ['GET', requestText('GET', '/big-chunked', API)],
      ['GET', requestText('GET', '/utf8-and-binary', API)],
      ['GET', requestText('GET', '/missing', API)],
      ['DELETE', requestText('DELETE', '/length', API, ['Content-Length: 0'])],
      ['GET', requestText('GET', '/', 'nothing.feature-x.localhost')],
      ['GET', requestText('GET', '/', 'nothing.feature-x.localhost', ['Accept: text/html'])],
      ['HEAD', requestText('HEAD', '/', 'nothing.feature-x.localhost')],
      ['GET', requestText('GET', '/', 'localhost')],
      ['GET', requestText('GET', '/', `localhost:${proxy.port}`, ['Accept: text/html'])],
      ['GET', requestText('GET', '/', '127.0.0.1')],
      ['GET', requestText('GET', '/', 'example.com')],
      ['GET', requestText('GET', '/', DOWN)],
      ['GET', requestText('GET', '/', API, ['x-devproxy-hops: 9'])],
    ];
    for (const [method, text] of cases) {
      const [front] = await exchange(proxy.port, text, [method]);
      const [node, again] = await exchange(proxy.port, text + text, [method, method]);
      expect(front, `${text.split('\r\n')[0]} (${text.split('\r\n')[1]})`).toEqual(node);
      expect(again).toEqual(node);
    }
    const [first] = await exchange(proxy.port, requestText('GET', '/length', API), ['GET']);
    expect(first?.head).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n$/);
  }, 60_000);

  it('keeps one connection across front and node requests, in order, and the answers stay whole', async () => {
    const upstream: Upstream = await startHttpUpstream(framingAnswers);
    cleanups.push(() => upstream.close());
    const proxy = await startTestProxy(tableOf(route(API, local(upstream.port))), cleanups);
    const socket = await connect(proxy.port);
    // One request at a time (each waits for the previous answer), then a body hands the connection to node.
    const requests = [
      requestText('GET', '/length', API),
      requestText('GET', '/chunked', API),
      requestText('HEAD', '/length', API),
      requestText('GET', '/trailers', API),
      requestText('POST', '/length', API, ['Content-Length: 4']) + 'data',
      requestText('GET', '/length', API),
    ];
    const answers = readResponses(socket, ['GET', 'GET', 'HEAD', 'GET', 'POST', 'GET'], (count) => {
      if (count < requests.length) socket.write(requests[count] as string);
    });
    socket.write(requests[0] as string);
    const all = await answers;
    expect(all.map((a) => a.head.split('\r\n')[0])).toEqual(Array(6).fill('HTTP/1.1 200 OK'));
    expect(all.map((a) => a.body)).toEqual(['ok', 'first second', '', 'body', 'ok', 'ok']);
    expect(all[3]?.trailers).toBe('x-checksum: abc123\r\n');
    expect(upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /length', 'GET /chunked', 'HEAD /length', 'GET /trailers', 'POST /length', 'GET /length']);
  });

  it('closes its idle connections on close() and lets an answer under way finish first', async () => {
    let release: (() => void) | undefined;
    const upstream: Upstream = await startHttpUpstream((req, res) => {
      req.resume();
      if (req.url === '/slow') {
        release = () => {
          res.writeHead(200, { 'content-length': '4' });
          res.end('done');
        };
        return;
      }
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
    });
    cleanups.push(() => upstream.close());
    const proxy = await startTestProxy(tableOf(route(API, local(upstream.port))), cleanups);
    const kept = await connect(proxy.port);
    const keptClosed = new Promise<void>((resolve) => kept.once('close', () => resolve()));
    const keptAnswer = new Promise<string>((resolve) => kept.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1'))));
    kept.write(requestText('GET', '/fast', API));
    // A small answer: the first read holds it whole; then the connection waits, idle, for another request.
    expect(await keptAnswer).toMatch(/\r\n\r\nok$/);
    const busy = await connect(proxy.port);
    const busyAnswer = readResponses(busy, ['GET']);
    busy.write(requestText('GET', '/slow', API));
    await waitFor(() => release, 5_000, 'the slow request at the upstream');
    const closing = proxy.server.close();
    await keptClosed;
    (release as () => void)();
    const [answer] = await busyAnswer;
    expect(answer?.body).toBe('done');
    await closing;
  });
});
