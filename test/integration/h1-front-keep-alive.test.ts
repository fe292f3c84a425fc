import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { takeOverConnections, type FrontResponse } from '../../proxy/h1-front.js';
import type { ClientRequest } from '../../proxy/proxy-core.js';
import type { ClientResponse } from '../../proxy/own-answers.js';
import type { ProxyHandler } from '../../proxy/types.js';
import { closeFrontServer } from '../helpers/proxy.js';

/**
 * The front's keep-alive timeout here: shorter than the answers below take, and long enough that
 * the client's second request arrives before it on a busy machine.
 */
const KEEP_ALIVE_MS = 500;
/** How long each answer below is held back: several keep-alive timeouts. */
const ANSWER_DELAY_MS = 3 * KEEP_ALIVE_MS;
/** A body piece the front writes at once, not joined to the head (it joins up to 16 KiB). */
const BIG_BODY = Buffer.alloc(20 * 1024, 0x61);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A plain-HTTP server whose connections the front serves: each first request is answered `ok` at
 * once (which arms the keep-alive timeout), each second one by `answer`.
 */
async function frontServer(answer: (res: FrontResponse) => void): Promise<number> {
  const handler: ProxyHandler = {
    handleRequest(req: ClientRequest, res: ClientResponse) {
      if (req.url === '/first') (res as FrontResponse).writeHead(200, ['content-length', '2']).end('ok');
      else answer(res as FrontResponse);
    },
    handleUpgrade: () => undefined,
    handleWebSocketConnect: () => undefined,
    close: async () => undefined,
  };
  const server = http.createServer();
  const front = takeOverConnections(server, handler, KEEP_ALIVE_MS);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => closeFrontServer(server, front));
  return (server.address() as AddressInfo).port;
}

const FIRST_ANSWER = /^HTTP\/1\.1 200 OK\r\n[\s\S]*?\r\n\r\nok/;

/**
 * Sends GET /first, once it is answered GET /second on the same connection, and resolves with
 * every byte the server sent after the first answer once it closed the connection.
 */
async function secondAnswerUntilClosed(port: number): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  cleanups.push(() => {
    socket.destroy();
  });
  let data = '';
  let second = false;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    data += chunk;
    if (!second && FIRST_ANSWER.test(data)) {
      second = true;
      data = data.replace(FIRST_ANSWER, '');
      socket.write('GET /second HTTP/1.1\r\nHost: a.localhost\r\n\r\n', 'latin1');
    }
  });
  socket.write('GET /first HTTP/1.1\r\nHost: a.localhost\r\n\r\n', 'latin1');
  await new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve());
    socket.once('error', reject);
  });
  expect(second).toBe(true);
  return data;
}

describe("the HTTP/1.1 front's keep-alive timeout", () => {
  it('lets an answer slower than the timeout finish, then closes the connection once idle for it', async () => {
    const port = await frontServer((res) => {
      setTimeout(() => res.writeHead(200, ['content-length', '2']).end('ok'), ANSWER_DELAY_MS);
    });
    const received = await secondAnswerUntilClosed(port);
    expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
  });

  it('closes the connection once idle when the timeout fired while the answer waited and its end wrote nothing', async () => {
    // The head and the whole body leave at once; the end, later, has no bytes left to write.
    const port = await frontServer((res) => {
      res.writeHead(200, ['content-length', String(BIG_BODY.length)]);
      res.write(BIG_BODY);
      setTimeout(() => res.end(), ANSWER_DELAY_MS);
    });
    const received = await secondAnswerUntilClosed(port);
    expect(received.endsWith(`\r\n\r\n${BIG_BODY.toString('latin1')}`)).toBe(true);
  });
});
