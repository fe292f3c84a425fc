import { createServer, type Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { H1Pool } from '../../proxy/h1-upstream.js';
import { DEFAULT_UPSTREAM_TIMEOUTS } from '../../proxy/upstream-pools.js';
import { waitFor } from '../helpers/git-repo.js';
import { startTcpUpstream } from '../helpers/upstreams.js';

/**
 * devproxy's HTTP/1.1 client against raw TCP upstreams that script their bytes exactly: framing,
 * keep-alive reuse, stale sockets, truncation and aborts, over real sockets.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface RawUpstream {
  origin: string;
  /** Every connection accepted so far, in order. */
  sockets: Socket[];
  /** What each connection received, as latin1 text. */
  received: string[];
}

/**
 * A TCP upstream: `onRequest(socket, index, text)` runs once per complete request head (and body,
 * when it has a Content-Length or is chunked) received on a connection; `index` counts requests on it.
 */
async function rawUpstream(onRequest: (socket: Socket, index: number, request: string, connection: number) => void): Promise<RawUpstream> {
  const up: RawUpstream = { origin: '', sockets: [], received: [] };
  const server = createServer((socket) => {
    let connection = -1;
    let buffered = '';
    let index = 0;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (connection === -1) {
        // Only this file's requests count: a parallel test probing a port it just closed may land here.
        if (!text.includes('\r\nhost: a')) {
          socket.destroy();
          return;
        }
        connection = up.sockets.push(socket) - 1;
        up.received[connection] = '';
      }
      up.received[connection] += text;
      buffered += text;
      for (;;) {
        const end = requestEnd(buffered);
        if (end === -1) return;
        const request = buffered.slice(0, end);
        buffered = buffered.slice(end);
        onRequest(socket, index++, request, connection);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of up.sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return up;
}

/** Where the first complete request in `text` ends, or -1. Every request of this file carries a `host: a…` field. */
function requestEnd(text: string): number {
  const head = text.indexOf('\r\n\r\n');
  if (head === -1) return -1;
  const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head));
  if (length !== null) return text.length >= head + 4 + Number(length[1]) ? head + 4 + Number(length[1]) : -1;
  if (/\r\ntransfer-encoding: *chunked/i.test(text.slice(0, head))) {
    const last = text.indexOf('\r\n0\r\n\r\n', head);
    return last === -1 ? -1 : last + 7;
  }
  return head + 4;
}

interface Outcome {
  heads: { status: number; raw: string[] }[];
  body: string;
  trailers?: Record<string, unknown>;
  error?: string;
  how?: 'end' | 'error';
}

/** Sends one request through `pool`, resolving with what the handler saw; bounded so a hang fails. */
function send(pool: H1Pool, options: Partial<Dispatcher.DispatchOptions> & { onStart?: (c: Dispatcher.DispatchController) => void; onData?: (c: Dispatcher.DispatchController) => void } = {}): Promise<Outcome> {
  const out: Outcome = { heads: [], body: '' };
  return new Promise<Outcome>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5_000);
    const done = (): void => {
      clearTimeout(timer);
      resolve(out);
    };
    pool.dispatch(
      { method: 'GET', path: '/', headers: ['host', 'app.localhost'], ...options } as Dispatcher.DispatchOptions,
      {
        onRequestStart: (controller) => options.onStart?.(controller),
        onResponseStart: (controller, status) => void out.heads.push({ status, raw: [...(controller.rawHeaders as string[])] }),
        onResponseData: (controller, chunk) => {
          out.body += chunk.toString('latin1');
          options.onData?.(controller);
        },
        onResponseEnd: (_c, trailers) => {
          out.how = 'end';
          out.trailers = trailers;
          done();
        },
        onResponseError: (_c, error) => {
          out.how = 'error';
          out.error = (error as NodeJS.ErrnoException).code ?? error.message;
          done();
        },
      },
    );
  });
}

function pool(origin: string, overrides: Partial<ConstructorParameters<typeof H1Pool>[1]> = {}): H1Pool {
  const p = new H1Pool(origin, { connections: 256, ...DEFAULT_UPSTREAM_TIMEOUTS, ...overrides });
  cleanups.push(() => p.destroy());
  return p;
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

describe('H1Pool: keep-alive and framing', () => {
  it('reuses one socket for sequential requests and relays raw header names, order and repeats', async () => {
    const up = await rawUpstream((s) => s.write('HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Mixed-Case: v\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok'));
    const p = pool(up.origin);
    for (let i = 0; i < 3; i++) {
      const out = await send(p);
      expect(out).toMatchObject({ how: 'end', body: 'ok' });
      expect(out.heads).toEqual([{ status: 200, raw: ['Set-Cookie', 'a=1', 'X-Mixed-Case', 'v', 'Set-Cookie', 'b=2', 'Content-Length', '2'] }]);
    }
    expect(up.sockets).toHaveLength(1);
    expect(up.received[0]).toBe('GET / HTTP/1.1\r\nhost: app.localhost\r\n\r\n'.repeat(3));
  });

  it('opens a new socket after Connection: close, an HTTP/1.0 answer, or a body delimited by close', async () => {
    const answers = [
      'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\n\r\nok',
    ];
    for (const answer of answers) {
      const up = await rawUpstream((s) => {
        s.write(answer);
        if (!answer.includes('Content-Length')) s.end();
      });
      const p = pool(up.origin);
      expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
      expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
      expect(up.sockets).toHaveLength(2);
    }
  });

  it('drops a socket that sent more than its answer, so the extra bytes never answer the next request', async () => {
    const up = await rawUpstream((s, _i, _r, connection) => s.write(connection === 0 ? `${OK}HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged` : 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal'));
    const p = pool(up.origin);
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    expect(await send(p)).toMatchObject({ how: 'end', body: 'real' });
    expect(up.sockets).toHaveLength(2);
  });

  it('drops an idle socket that sends bytes nobody asked for, so they never answer the next request', async () => {
    const up = await rawUpstream((s, _i, _r, connection) => s.write(connection === 0 ? OK : 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal'));
    const p = pool(up.origin);
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    up.sockets[0]?.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged');
    await waitFor(() => (up.sockets[0]?.readableEnded === true || up.sockets[0]?.destroyed === true) || undefined, 5_000, 'the idle socket to be dropped');
    expect(await send(p)).toMatchObject({ how: 'end', body: 'real' });
    expect(up.sockets).toHaveLength(2);
  });

  it('fails an answer whose framing is in doubt (Content-Length with Transfer-Encoding) and closes that socket', async () => {
    const up = await rawUpstream((s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'));
    const p = pool(up.origin);
    expect(await send(p)).toMatchObject({ how: 'error', error: 'HPE_UNEXPECTED_CONTENT_LENGTH' });
    await waitFor(() => (up.sockets[0]?.readableEnded === true || up.sockets[0]?.destroyed === true) || undefined, 5_000);
  });

  it('reads no body after HEAD and keeps the socket; relays trailers of a chunked answer', async () => {
    const up = await rawUpstream((s, index) =>
      s.write(index === 0 ? 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' : 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nServer-Timing: app;dur=1\r\n\r\n'),
    );
    const p = pool(up.origin);
    expect(await send(p, { method: 'HEAD' })).toMatchObject({ how: 'end', body: '' });
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok', trailers: { 'server-timing': 'app;dur=1' } });
    expect(up.sockets).toHaveLength(1);
  });

  it('passes 103 Early Hints on as an interim answer and fails an unasked 100 Continue, as undici did', async () => {
    const early = await rawUpstream((s) => s.write(`HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n${OK}`));
    const out = await send(pool(early.origin));
    expect(out.heads.map((h) => h.status)).toEqual([103, 200]);
    expect(out).toMatchObject({ how: 'end', body: 'ok' });
    const cont = await rawUpstream((s) => s.write(`HTTP/1.1 100 Continue\r\n\r\n${OK}`));
    expect(await send(pool(cont.origin))).toMatchObject({ how: 'error', error: 'UND_ERR_SOCKET' });
  });
});

describe('H1Pool: connections that go away', () => {
  it('an upstream closing mid-body gives an error after the data, never a clean end', async () => {
    for (const answer of ['HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhalf\r\n']) {
      const up = await rawUpstream((s) => s.end(answer));
      const out = await send(pool(up.origin));
      expect(out).toMatchObject({ how: 'error', error: 'UND_ERR_SOCKET', body: 'half' });
    }
  });

  it('sends a bodiless GET once more when the reused socket turns out closed, but not a POST, and only once', async () => {
    // Each connection answers its first request and closes when a second one comes: the keep-alive race.
    const up = await rawUpstream((s, index) => (index === 0 ? s.write(OK) : s.destroy()));
    const p = pool(up.origin);
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    expect(up.sockets).toHaveLength(2);
    expect(await send(p, { method: 'POST', headers: ['host', 'app.localhost', 'content-length', '0'] })).toMatchObject({ how: 'error' });
    expect(up.sockets).toHaveLength(2);

    const never = await rawUpstream((s, index, _r, connection) => (index === 0 && connection === 0 ? s.write(OK) : s.destroy()));
    const q = pool(never.origin);
    await send(q);
    expect(await send(q)).toMatchObject({ how: 'error' });
    expect(never.sockets).toHaveLength(2);
  });

  it('forgets an idle socket the upstream closed, and the next request opens a new one', async () => {
    const up = await rawUpstream((s) => s.write(OK));
    const p = pool(up.origin);
    await send(p);
    up.sockets[0]?.end();
    await waitFor(() => (up.sockets[0]?.closed === true) || undefined, 5_000);
    expect(await send(p, { method: 'POST', headers: ['host', 'app.localhost', 'content-length', '0'] })).toMatchObject({ how: 'end', body: 'ok' });
    expect(up.sockets).toHaveLength(2);
  });

  it('an abort mid-answer closes the upstream socket; the next request gets a fresh one', async () => {
    const up = await rawUpstream((s, _i, _r, connection) => s.write(connection === 0 ? 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst' : OK));
    const p = pool(up.origin);
    const out = await send(p, { onData: (c) => c.abort(Object.assign(new Error('client gone'), { code: 'DEVPROXY_CLIENT_ABORTED' })) });
    expect(out).toMatchObject({ how: 'error', error: 'DEVPROXY_CLIENT_ABORTED', body: 'first' });
    await waitFor(() => (up.sockets[0]?.readableEnded === true || up.sockets[0]?.destroyed === true) || undefined, 5_000);
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    expect(up.sockets).toHaveLength(2);
  });

  it('maps an answer that never comes to UND_ERR_HEADERS_TIMEOUT and a stalled body to UND_ERR_BODY_TIMEOUT', async () => {
    const silent = await rawUpstream(() => {});
    expect(await send(pool(silent.origin, { headersTimeoutMs: 100 }))).toMatchObject({ how: 'error', error: 'UND_ERR_HEADERS_TIMEOUT' });
    const stalled = await rawUpstream((s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf'));
    expect(await send(pool(stalled.origin, { bodyTimeoutMs: 100 }))).toMatchObject({ how: 'error', error: 'UND_ERR_BODY_TIMEOUT', body: 'half' });
  });

  it('reports ECONNREFUSED when nothing listens', async () => {
    const up = await rawUpstream(() => {});
    const origin = up.origin;
    await cleanups.pop()?.();
    expect(await send(pool(origin))).toMatchObject({ how: 'error', error: 'ECONNREFUSED' });
  });
});

describe('H1Pool: request bodies and bounds', () => {
  it('streams a body by its Content-Length, or chunked without one; sends content-length: 0 for a bodiless POST', async () => {
    const up = await rawUpstream((s) => s.write(OK));
    const p = pool(up.origin);
    const sized = new PassThrough();
    const sizedDone = send(p, { method: 'PUT', headers: ['host', 'a', 'Content-Length', '10'], body: sized });
    sized.write('hello');
    sized.end('world');
    expect(await sizedDone).toMatchObject({ how: 'end' });
    const streamed = new PassThrough();
    const streamedDone = send(p, { method: 'POST', headers: ['host', 'a'], body: streamed });
    streamed.write('hello');
    streamed.end('!');
    expect(await streamedDone).toMatchObject({ how: 'end' });
    expect(await send(p, { method: 'POST', headers: ['host', 'a'] })).toMatchObject({ how: 'end' });
    expect(up.received[0]).toBe(
      'PUT / HTTP/1.1\r\nhost: a\r\nContent-Length: 10\r\n\r\nhelloworld' +
        'POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n' +
        'POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n',
    );
  });

  it('fails a body longer or shorter than its Content-Length instead of mis-framing the upstream connection', async () => {
    const up = await rawUpstream((s) => s.write(OK));
    const p = pool(up.origin);
    const long = new PassThrough();
    const longDone = send(p, { method: 'PUT', headers: ['host', 'a', 'content-length', '3'], body: long });
    long.end('toolong');
    expect(await longDone).toMatchObject({ how: 'error', error: 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' });
    const short = new PassThrough();
    const shortDone = send(p, { method: 'PUT', headers: ['host', 'a', 'content-length', '30'], body: short });
    short.end('short');
    expect(await shortDone).toMatchObject({ how: 'error', error: 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' });
  });

  it('refuses to write a header value or target that would break the request line', async () => {
    const up = await rawUpstream((s) => s.write(OK));
    const p = pool(up.origin);
    expect(await send(p, { headers: ['host', 'a', 'x-evil', 'v\r\nInjected: 1'] })).toMatchObject({ how: 'error', error: 'UND_ERR_INVALID_ARG' });
    expect(await send(p, { path: '/ HTTP/1.1\r\nX: y' })).toMatchObject({ how: 'error', error: 'UND_ERR_INVALID_ARG' });
    expect(up.received.join('')).not.toContain('Injected');
  });

  it('opens at most `connections` sockets; requests beyond wait and are served in turn', async () => {
    const held: Socket[] = [];
    const up = await rawUpstream((s) => held.push(s));
    const p = pool(up.origin, { connections: 2 });
    const answers = Array.from({ length: 5 }, () => send(p));
    await waitFor(() => (held.length === 2) || undefined, 5_000);
    // Answer one at a time; each answer frees a socket for the next queued request.
    for (let served = 0; served < 5; served++) {
      await waitFor(() => (held.length > served) || undefined, 5_000);
      (held[served] as Socket).write(OK);
    }
    for (const answer of answers) expect(await answer).toMatchObject({ how: 'end', body: 'ok' });
    expect(up.sockets).toHaveLength(2);
  });
});

/** A TCP upstream handed each accepted socket as it is, by its origin; closed after the test. */
async function tcpUpstream(onConnection: (socket: Socket) => void): Promise<string> {
  return `http://127.0.0.1:${(await startTcpUpstream(onConnection, cleanups)).port}`;
}

/** Rejects when `promise` has not settled within `ms`: a hang fails the test instead of stalling it. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)));
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

type Callback = 'onRequestStart' | 'onResponseStart' | 'onResponseData' | 'onResponseEnd' | 'onResponseError';

/** Sends a GET whose handler throws from `thrower`; resolves with the callbacks it saw, in order, once it is over. */
function sendThrowing(pool: H1Pool, thrower: Callback): Promise<{ calls: Callback[]; error?: Error }> {
  const calls: Callback[] = [];
  const out: { calls: Callback[]; error?: Error } = { calls };
  return within(
    new Promise((resolve) => {
      const called = (name: Callback): void => {
        calls.push(name);
        if (name === thrower) throw new Error(`thrown by ${name}`);
      };
      pool.dispatch({ method: 'GET', path: '/', headers: ['host', 'a'] } as Dispatcher.DispatchOptions, {
        onRequestStart: () => called('onRequestStart'),
        onResponseStart: () => called('onResponseStart'),
        onResponseData: () => called('onResponseData'),
        onResponseEnd: () => {
          if (thrower !== 'onResponseEnd') resolve(out);
          called('onResponseEnd');
        },
        onResponseError: (_c, error) => {
          out.error = error;
          resolve(out);
          called('onResponseError');
        },
      });
    }),
    5_000,
    'the request',
  );
}

describe('H1Pool: handler callbacks that throw', () => {
  it('reports a throw from any callback through onResponseError, once, instead of crashing the process; the pool goes on', async () => {
    const up = await rawUpstream((s) => s.write(OK));
    const p = pool(up.origin);
    for (const thrower of ['onRequestStart', 'onResponseStart', 'onResponseData', 'onResponseEnd'] as const) {
      const out = await sendThrowing(p, thrower);
      expect(out.calls.at(-1)).toBe('onResponseError');
      expect(out.calls.filter((c) => c === 'onResponseError')).toHaveLength(1);
      expect(out.error?.message).toBe(`thrown by ${thrower}`);
      expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    }
  });

  it('swallows a throw from onResponseError reached from the deadline timer or a request body event', async () => {
    const silent = await rawUpstream(() => {});
    expect(await sendThrowing(pool(silent.origin, { headersTimeoutMs: 50 }), 'onResponseError')).toMatchObject({ error: { code: 'UND_ERR_HEADERS_TIMEOUT' } });
    const up = await rawUpstream((s) => s.write(OK));
    const p = pool(up.origin);
    const body = new PassThrough();
    const failed = new Promise<string>((resolve) =>
      p.dispatch({ method: 'PUT', path: '/', headers: ['host', 'a', 'content-length', '3'], body } as Dispatcher.DispatchOptions, {
        onResponseError: (_c, error) => {
          resolve((error as NodeJS.ErrnoException).code ?? '');
          throw error;
        },
      }),
    );
    await waitFor(() => up.sockets[0], 5_000);
    body.end('toolong');
    expect(await failed).toBe('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
  });
});

describe('H1Pool: what is written upstream', () => {
  it('refuses header values with control characters or characters above U+00FF (written as latin1, U+010D would be a CR)', async () => {
    const up = await rawUpstream((s) => s.write(OK));
    const p = pool(up.origin);
    for (const value of ['a\u010d\u010aInjected: 1', 'a\u0100', 'a\x01b', 'a\x7fb', 'a\u2028']) {
      expect(await send(p, { headers: ['host', 'a', 'x-v', value] })).toMatchObject({ how: 'error', error: 'UND_ERR_INVALID_ARG' });
    }
    expect(await send(p, { headers: ['host', 'a', 'x-v\u010d', 'v'] })).toMatchObject({ how: 'error', error: 'UND_ERR_INVALID_ARG' });
    expect(await send(p, { path: '/\u010d\u010aInjected: 1' })).toMatchObject({ how: 'error', error: 'UND_ERR_INVALID_ARG' });
    expect(await send(p, { headers: ['host', 'a', 'x-v', 'tab\there, caf\u00e9 ~'] })).toMatchObject({ how: 'end', body: 'ok' });
    expect(up.received.join('')).not.toContain('Injected');
    expect(up.received[0]).toContain('x-v: tab\there, caf\u00e9 ~\r\n');
  });

  it('refuses a Content-Length with no body, so the next request never becomes its body', async () => {
    const up = await rawUpstream((s) => s.write('HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n'));
    const p = pool(up.origin);
    expect(await send(p, { method: 'PUT', headers: ['host', 'a', 'content-length', '5'] })).toMatchObject({ how: 'error', error: 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' });
    expect(await send(p, { headers: ['host', 'a', 'x-secret', 'token'] })).toMatchObject({ how: 'end', heads: [{ status: 401 }] });
    expect(up.received).toEqual(['GET / HTTP/1.1\r\nhost: a\r\nx-secret: token\r\n\r\n']);
  });

  it('skips an empty body chunk instead of writing the chunked body\'s end early', async () => {
    const up = await rawUpstream((s) => s.write(OK));
    const p = pool(up.origin);
    const body = Readable.from([Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(0), Buffer.from('!')]);
    expect(await send(p, { method: 'POST', headers: ['host', 'a'], body })).toMatchObject({ how: 'end', body: 'ok' });
    expect(up.received[0]).toBe('POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n');
  });

  it('holds the upload while the upstream does not read it (back-pressure), then sends it all', async () => {
    const TOTAL = 32 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, 97);
    let upstream: Socket | undefined;
    let received = 0;
    const origin = await tcpUpstream((socket) => {
      upstream = socket;
      socket.pause();
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= TOTAL) socket.write(OK);
      });
    });
    let produced = 0;
    const body = new Readable({
      read() {
        produced += piece.length;
        this.push(piece);
        if (produced >= TOTAL) this.push(null);
      },
    });
    const p = pool(origin);
    const done = send(p, { method: 'PUT', headers: ['host', 'a', 'content-length', String(TOTAL)], body });
    await waitFor(() => (upstream !== undefined && body.isPaused()) || undefined, 5_000, 'the upload to pause');
    expect(produced).toBeLessThan(TOTAL);
    upstream?.resume();
    expect(await done).toMatchObject({ how: 'end', body: 'ok' });
  });
});

/** An upstream answering each connection's first request with `total` bytes, written with back-pressure; `blocked` while it waits for a drain. */
async function bigAnswerUpstream(total: number): Promise<{ origin: string; written: () => number; blocked: () => boolean }> {
  const piece = Buffer.alloc(1024 * 1024, 97);
  let written = 0;
  let blocked = false;
  const origin = await tcpUpstream((socket) =>
    socket.once('data', () => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n\r\n`);
      const pump = (): void => {
        blocked = false;
        while (written < total) {
          written += piece.length;
          if (!socket.write(piece)) {
            blocked = true;
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    }),
  );
  return { origin, written: () => written, blocked: () => blocked };
}

/**
 * Lets `count` event-loop turns pass: each turn's poll phase reads whatever a socket that is not
 * paused has waiting, so bytes in the kernel reach a reading client within one of them.
 */
async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('H1Pool: pausing the answer', () => {
  const TOTAL = 64 * 1024 * 1024;

  it('a paused answer stops reading the upstream: its writes block until the handler resumes', async () => {
    const up = await bigAnswerUpstream(TOTAL);
    let whilePaused = 0;
    let paused = false;
    let controller: Dispatcher.DispatchController | undefined;
    const done = send(pool(up.origin), {
      headers: ['host', 'a'],
      onData: (c) => {
        if (paused) whilePaused++;
        else if (controller === undefined) {
          controller = c;
          paused = true;
          c.pause();
        }
      },
    });
    // The upstream blocks once the kernel buffers between the two are full; a client still reading
    // them would get more data within the next turns.
    await waitFor(() => (controller !== undefined && up.blocked()) || undefined, 10_000, 'the pause and a blocked upstream');
    await turns(20);
    expect(whilePaused).toBe(0);
    expect(up.written()).toBeLessThan(TOTAL);
    paused = false;
    controller?.resume();
    const out = await within(done, 10_000, 'the resumed answer');
    expect(out).toMatchObject({ how: 'end' });
    expect(out.body.length).toBe(TOTAL);
  });

  it('a pause asked before the request has a socket (in onRequestStart) holds the answer until resumed', async () => {
    const up = await bigAnswerUpstream(TOTAL);
    let controller: Dispatcher.DispatchController | undefined;
    let delivered = 0;
    const done = send(pool(up.origin), {
      headers: ['host', 'a'],
      onStart: (c) => {
        controller = c;
        c.pause();
      },
      onData: () => void delivered++,
    });
    await waitFor(() => up.blocked() || undefined, 10_000, 'a blocked upstream');
    await turns(20);
    expect(delivered).toBe(0);
    controller?.resume();
    const out = await within(done, 10_000, 'the resumed answer');
    expect(out.body.length).toBe(TOTAL);
  });

  it('a socket whose answer ended while paused serves the next request (it is resumed as it goes back to the pool)', async () => {
    const up = await rawUpstream((s) => s.write(OK));
    const p = pool(up.origin, { headersTimeoutMs: 2_000 });
    expect(await send(p, { onData: (c) => c.pause() })).toMatchObject({ how: 'end', body: 'ok' });
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    expect(up.sockets).toHaveLength(1);
  });
});

describe('H1Pool: reuse, retries and deadlines', () => {
  it('never sends a PUT again after its body went out on a socket the upstream then closed', async () => {
    const up = await rawUpstream((s, index) => (index === 0 ? s.write(OK) : s.destroy()));
    const p = pool(up.origin);
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    const body = new PassThrough();
    const done = send(p, { method: 'PUT', headers: ['host', 'a', 'content-length', '5'], body });
    body.end('hello');
    expect(await done).toMatchObject({ how: 'error', error: 'UND_ERR_SOCKET' });
    expect(up.sockets).toHaveLength(1);
  });

  it('maps a connect that does not finish in time to UND_ERR_CONNECT_TIMEOUT', async () => {
    const up = await rawUpstream((s) => s.write(OK));
    const done = send(pool(up.origin, { connectTimeoutMs: 1 }));
    // Hold the event loop past the deadline tick: the next turn runs timers before it polls the
    // socket, so the connect is still pending when the deadline is checked.
    const until = Date.now() + 30;
    while (Date.now() < until);
    expect(await done).toMatchObject({ how: 'error', error: 'UND_ERR_CONNECT_TIMEOUT' });
  });

  it('an aborted queued request never reaches the upstream and the queue goes on', async () => {
    const held: Socket[] = [];
    const up = await rawUpstream((s) => held.push(s));
    const p = pool(up.origin, { connections: 1 });
    const first = send(p);
    await waitFor(() => held[0], 5_000);
    const queued = send(p, { headers: ['host', 'a', 'x-which', 'queued'], onStart: (c) => queueMicrotask(() => c.abort(Object.assign(new Error('gone'), { code: 'DEVPROXY_CLIENT_ABORTED' }))) });
    expect(await queued).toMatchObject({ how: 'error', error: 'DEVPROXY_CLIENT_ABORTED' });
    const third = send(p);
    held[0]?.write(OK);
    await waitFor(() => held[1], 5_000);
    held[1]?.write(OK);
    expect(await first).toMatchObject({ how: 'end', body: 'ok' });
    expect(await third).toMatchObject({ how: 'end', body: 'ok' });
    expect(up.received.join('')).not.toContain('queued');
    expect(up.sockets).toHaveLength(1);
  });

  it('an answer before the upload ended drains the rest of the body and closes that socket', async () => {
    const up = await rawUpstream((s) => s.write(OK));
    const p = pool(up.origin);
    const body = new PassThrough();
    const done = send(p, { method: 'PUT', headers: ['host', 'a', 'content-length', '10'], body });
    body.write('hello');
    await waitFor(() => up.received[0]?.endsWith('hello') || undefined, 5_000);
    up.sockets[0]?.write('HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n');
    expect(await done).toMatchObject({ how: 'end', heads: [{ status: 413 }] });
    const drained = new Promise((resolve) => body.once('end', resolve));
    body.end('world');
    await within(drained, 5_000, 'the rest of the upload');
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    expect(up.sockets).toHaveLength(2);
    expect(up.received[0]).not.toContain('world');
  });

  it('closes an idle socket after the Keep-Alive timeout hint less the margin; a hint within the margin is not reused', async () => {
    const soon = await rawUpstream((s) => s.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=3\r\nContent-Length: 2\r\n\r\nok'));
    expect(await send(pool(soon.origin, { connectTimeoutMs: 1_000 }))).toMatchObject({ how: 'end', body: 'ok' });
    await waitFor(() => soon.sockets[0]?.readableEnded || undefined, 5_000, 'the idle socket to close');
    const now = await rawUpstream((s) => s.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2\r\nContent-Length: 2\r\n\r\nok'));
    const p = pool(now.origin);
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    expect(now.sockets).toHaveLength(2);
  });

  it('reuses the socket after a 204 or 304, and closes it when that answer declares a body it may send late', async () => {
    const plain = await rawUpstream((s, index) => s.write(index === 0 ? 'HTTP/1.1 204 No Content\r\n\r\n' : index === 1 ? 'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n' : OK));
    const p = pool(plain.origin);
    expect(await send(p)).toMatchObject({ how: 'end', body: '', heads: [{ status: 204 }] });
    expect(await send(p)).toMatchObject({ how: 'end', body: '', heads: [{ status: 304 }] });
    expect(await send(p)).toMatchObject({ how: 'end', body: 'ok' });
    expect(plain.sockets).toHaveLength(1);
    for (const head of ['HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\n', 'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n']) {
      // The late "body" is a whole forged answer: it must never reach the next request.
      const late = await rawUpstream((s, index, _r, connection) => s.write(connection > 0 ? OK : index === 0 ? head : 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged'));
      const q = pool(late.origin);
      expect(await send(q)).toMatchObject({ how: 'end', body: '' });
      expect(await send(q)).toMatchObject({ how: 'end', body: 'ok' });
      expect(late.sockets).toHaveLength(2);
    }
  });

  it('relays repeated trailer names as an array', async () => {
    const up = await rawUpstream((s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\nServer-Timing: a\r\nx-t: 2\r\n\r\n'));
    expect(await send(pool(up.origin))).toMatchObject({ how: 'end', body: 'ok', trailers: { 'x-t': ['1', '2'], 'server-timing': 'a' } });
  });

  it('close() called twice and destroy() after close() all settle once the sockets are gone', async () => {
    const held: Socket[] = [];
    const up = await rawUpstream((s) => held.push(s));
    const p = pool(up.origin);
    const answer = send(p);
    await waitFor(() => held[0], 5_000);
    const first = p.close();
    const second = p.close();
    const destroyed = p.destroy();
    await within(Promise.all([first, second, destroyed]), 5_000, 'close and destroy');
    expect(await answer).toMatchObject({ how: 'error', error: 'UND_ERR_DESTROYED' });
  });
});
