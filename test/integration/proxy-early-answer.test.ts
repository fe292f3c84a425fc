import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { endUnfinishedUpload, MAX_DRAIN_BYTES } from '../../proxy/unfinished-upload.js';
import { loopbackLookup } from '../../proxy/upstream-pools.js';
import type { RoutingTable } from '../../router/types.js';
import { waitFor } from '../helpers/git-repo.js';
import { startHttpsTestProxy, startTestProxy } from '../helpers/proxy.js';
import { local, remote, route, tableOf } from '../helpers/routes.js';
import { createTestTls, h2Get, send, startTcpUpstream, type TcpUpstream, type TestTls } from '../helpers/upstreams.js';
import { within } from '../reliability/raw-client.js';

/**
 * Upstreams that answer out of turn, through a real proxy: an answer that comes before the client
 * has sent its whole upload (the daemon reads a bounded amount more, then ends the upload), for a
 * local target (devproxy's own HTTP/1.1 client) and a remote one (undici over HTTPS, with a test
 * CA standing in for the team's cloud endpoint); and the drain limit alone, on a real node:http
 * server.
 */

const API = 'api.feature-x.localhost';
const KIB = 1024;
const MIB = 1024 * KIB;
/** The most a test client tries to upload. */
const UPLOAD_BYTES = 64 * MIB;
const PIECE = Buffer.alloc(64 * KIB, 0x61);
const TOO_LARGE = 'HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\ntoo large';
/** The upstream's answer to any other (bodiless) request. */
const OK = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok';
/** The remote's public name: Host and SNI (the pool connects to 127.0.0.1). */
const REMOTE_HOST = 'api-dev.test-remote.localhost';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let remoteTls: TestTls;
beforeAll(async () => {
  remoteTls = await createTestTls([REMOTE_HOST]);
});

/** A scripted upstream and the connections on which it answered an upload early. */
interface EarlyAnswerUpstream extends TcpUpstream {
  answeredEarly: Socket[];
}

/**
 * An upstream that answers 413 as soon as the head of a request to `/upload` arrives and never
 * reads that connection again; any other request gets a 200 `ok` (the connection stays usable).
 * Given `tls`, it is an HTTPS remote.
 */
async function earlyAnswerUpstream(tls?: TestTls): Promise<EarlyAnswerUpstream> {
  const answeredEarly: Socket[] = [];
  const up = await startTcpUpstream(
    (socket) => {
      let unread = '';
      const onData = (chunk: Buffer): void => {
        unread += chunk.toString('latin1');
        for (let end = unread.indexOf('\r\n\r\n'); end !== -1; end = unread.indexOf('\r\n\r\n')) {
          const requestLine = unread.slice(0, unread.indexOf('\r\n'));
          unread = unread.slice(end + 4);
          if (!requestLine.includes(' /upload ')) {
            socket.write(OK);
            continue;
          }
          socket.off('data', onData);
          socket.pause();
          answeredEarly.push(socket);
          socket.write(TOO_LARGE);
          return;
        }
      };
      socket.on('data', onData);
    },
    cleanups,
    tls,
  );
  return { ...up, answeredEarly };
}

/** The two kinds of upstream client: devproxy's own HTTP/1.1 one (local) and undici's Pool over HTTPS (remote). */
const KINDS = ['local', 'remote'] as const;
type Kind = (typeof KINDS)[number];

/** A table whose one route, {@link API}, leads to a new early-answer upstream of `kind`. */
async function earlyAnswerRoute(kind: Kind): Promise<{ table: RoutingTable; up: EarlyAnswerUpstream }> {
  if (kind === 'local') {
    const up = await earlyAnswerUpstream();
    return { table: tableOf(route(API, local(up.port))), up };
  }
  const up = await earlyAnswerUpstream(remoteTls);
  const dir = await mkdtemp(join(tmpdir(), 'devproxy-early-answer-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const ca = join(dir, 'ca.pem');
  await writeFile(ca, remoteTls.caPem);
  const target = remote({ origin: `https://127.0.0.1:${up.port}`, hostname: REMOTE_HOST, authority: REMOTE_HOST, caFiles: [ca] });
  return { table: tableOf(route(API, target)), up };
}

/**
 * The daemon's connection to the upstream that answered early is not reused (mid-request, it
 * cannot carry another): the next request on the route is answered on a fresh one, and the early
 * one is closed. From now on the early one reads and drops, so it would never answer a request
 * sent on it, and its end is seen (a paused socket would never read it); what is left on it is
 * bounded, as the client's upload is over by now.
 */
async function expectRouteUsableAfter(up: EarlyAnswerUpstream, next: () => Promise<{ status: number; body: string }>): Promise<void> {
  expect(up.answeredEarly).toHaveLength(1);
  const early = up.answeredEarly[0] as Socket;
  early.resume();
  const after = await within(next(), 10_000, 'the request after the early answer');
  expect([after.status, after.body]).toEqual([200, 'ok']);
  expect(up.answeredEarly).toHaveLength(1);
  await waitFor(() => !up.open.has(early) || undefined, 5_000, 'the daemon to close its connection to the upstream that answered early');
}

/**
 * An HTTP/1.1 upload of {@link UPLOAD_BYTES} on a raw socket to `port`: the head, then pieces
 * with back-pressure until all is out or the connection is gone. `onAnswer` gets what comes back.
 */
async function keepSending(port: number, host: string, onAnswer: (chunk: Buffer) => void = () => {}): Promise<{ sent: () => number; closed: () => boolean; done: Promise<unknown> }> {
  const client = net.connect(port, '127.0.0.1');
  cleanups.push(() => void client.destroy());
  let closed = false;
  let sent = 0;
  client.on('data', onAnswer);
  client.on('error', () => {});
  client.on('close', () => (closed = true));
  client.write(`PUT /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${UPLOAD_BYTES}\r\n\r\n`);
  const pump = (): void => {
    while (!closed && !client.destroyed && sent < UPLOAD_BYTES) {
      sent += PIECE.length;
      if (!client.write(PIECE)) {
        client.once('drain', pump);
        return;
      }
    }
  };
  pump();
  const done = waitFor(() => (closed || (sent >= UPLOAD_BYTES && client.writableLength === 0)) || undefined, 30_000, 'the upload to end or its connection to close');
  return { sent: () => sent, closed: () => closed, done };
}

describe.each(KINDS)('an answer from a %s upstream before the client has sent its whole upload', (kind) => {
  it('HTTP/1.1: the answer says Connection: close and the daemon reads at most 256 KiB more before closing', async () => {
    const { table, up } = await earlyAnswerRoute(kind);
    const proxy = await startTestProxy(table, cleanups);
    // The daemon's end of the client connection, to count what it read.
    const served: Socket[] = [];
    const handleRequest = proxy.handler.handleRequest.bind(proxy.handler);
    proxy.handler.handleRequest = (req, res) => {
      served.push(req.socket as Socket);
      handleRequest(req, res);
    };
    let answer = '';
    let readAtAnswer = -1;
    const upload = await keepSending(proxy.port, API, (chunk) => {
      answer += chunk.toString('latin1');
      if (readAtAnswer === -1 && answer.includes('\r\n\r\n')) readAtAnswer = (served[0] as Socket).bytesRead;
    });
    await upload.done;
    await waitFor(() => readAtAnswer !== -1 || undefined, 5_000, 'the answer');
    const daemon = served[0] as Socket;
    // What the daemon read once it had answered: the drain limit and one read of slack, not the upload.
    expect(daemon.bytesRead - readAtAnswer).toBeLessThanOrEqual(MAX_DRAIN_BYTES + PIECE.length);
    expect(upload.sent()).toBeLessThan(UPLOAD_BYTES);
    expect(answer).toMatch(/^HTTP\/1\.1 413 Payload Too Large\r\n/);
    expect(answer.toLowerCase()).toContain('\r\nconnection: close\r\n');
    expect(answer.endsWith('\r\n\r\ntoo large')).toBe(true);
    await waitFor(() => (upload.closed() && daemon.destroyed) || undefined, 5_000, 'both ends of the connection to close');
    await expectRouteUsableAfter(up, () => send(proxy.port, API, { path: '/after' }));
  });

  it('h2: the upload stream is reset with NO_ERROR after the complete answer, so the client stops sending', async () => {
    const { table, up } = await earlyAnswerRoute(kind);
    const proxy = await startHttpsTestProxy(table, cleanups);
    const session = http2.connect(`https://${API}:${proxy.port}`, { ca: proxy.caPem, lookup: loopbackLookup });
    cleanups.push(() => session.destroy());
    session.on('error', () => {});
    const stream = session.request({ ':method': 'POST', ':path': '/upload', 'content-type': 'application/octet-stream' });
    stream.on('error', () => {});
    let status = 0;
    let body = '';
    let sent = 0;
    let sentAtAnswer = -1;
    let ended = false;
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
      sentAtAnswer = sent;
    });
    stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
    stream.on('end', () => (ended = true));
    const pump = (): void => {
      while (!stream.closed && !stream.destroyed && sent < UPLOAD_BYTES) {
        sent += PIECE.length;
        if (!stream.write(PIECE)) {
          stream.once('drain', pump);
          return;
        }
      }
      if (sent >= UPLOAD_BYTES && !stream.closed) stream.end();
    };
    pump();
    await waitFor(() => stream.closed || undefined, 30_000, 'the upload stream to close');
    expect(status).toBe(413);
    expect(ended).toBe(true);
    expect(body).toBe('too large');
    expect(stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    // After the answer the daemon takes no more than what the stream's flow-control window let through.
    expect(sent - sentAtAnswer).toBeLessThanOrEqual(4 * MIB);
    expect(sent).toBeLessThan(UPLOAD_BYTES);
    // The session outlives the reset stream: the next request goes on it.
    await expectRouteUsableAfter(up, () => h2Get(session, '/after'));
  });
});

describe('endUnfinishedUpload on HTTP/1.1, the drain limit alone', () => {
  it('reads at most 256 KiB more of an unfinished body, then cuts the connection', async () => {
    // A real node:http server whose answer is under way, its end unread by the client: node:http
    // cannot close after it, so only the limit stops the reading of an upload that goes on.
    let served: Socket | undefined;
    let readAtEnd = -1;
    const server = http.createServer((req, res) => {
      served = req.socket;
      res.writeHead(413, { connection: 'close', 'content-length': '9' });
      readAtEnd = req.socket.bytesRead;
      endUnfinishedUpload(req);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    cleanups.push(() => server.closeAllConnections());
    const upload = await keepSending((server.address() as net.AddressInfo).port, '127.0.0.1');
    await upload.done;
    expect((served as Socket).bytesRead - readAtEnd).toBeLessThanOrEqual(MAX_DRAIN_BYTES + PIECE.length);
    await waitFor(() => served?.destroyed || undefined, 5_000, 'the server to cut the connection');
    expect(upload.sent()).toBeLessThan(UPLOAD_BYTES);
  });
});
