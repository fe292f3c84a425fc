import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxyHandler, type ProxyHandlerOptions } from '../../proxy/server.js';
import { startHttpProxy, type HttpProxyServer } from '../../proxy/http-listener.js';
import type { ProxyHandler } from '../../proxy/types.js';
import { local, route, tableOf } from '../helpers/routes.js';
import WebSocket from 'ws';
import { send, startHttpUpstream, startWsEcho, type Upstream } from '../helpers/upstreams.js';
import { rawConnect, rawExchange, statusCodes, within } from './raw-client.js';
import { tally } from './tally.js';

/**
 * Hostile and malformed requests on raw sockets against a real proxy with one route. Only our
 * own `*.localhost` names may reach an upstream; smuggling shapes are refused before anything
 * is forwarded; slow or oversized clients are cut without hurting a well-behaved one.
 */
const hosts = tally('host-headers');
const smuggling = tally('request-smuggling');
const slow = tally('oversize-and-slowloris');

const OURS = 'api.feature-x.localhost';
/** Short header deadline so slowloris cases finish fast; production default is 30 s. */
const HEADERS_TIMEOUT_MS = 500;

let upstream: Upstream;
let handler: ProxyHandler;
let server: HttpProxyServer;
let port: number;

beforeAll(async () => {
  upstream = await startHttpUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end(`upstream saw ${req.method} ${req.url}`));
  });
  const options: ProxyHandlerOptions = {
    getTable: () => tableOf(route(OURS, local(upstream.port))),
    httpPort: 0,
    logger: { info() {}, warn() {}, error() {} },
  };
  handler = createProxyHandler(options);
  server = await startHttpProxy({ handler, port: 0, hosts: ['127.0.0.1'], headersTimeoutMs: HEADERS_TIMEOUT_MS, drainTimeoutMs: 500 });
  port = server.port;
  options.httpPort = port;
});

afterAll(async () => {
  await server.close();
  await handler.close();
  await upstream.close();
});

/** Sends one request with the raw Host line given; returns the first status and whether the upstream was reached. */
async function withHost(hostLine: string | null, requestLine = 'GET /probe HTTP/1.1'): Promise<{ status: number; reached: boolean; data: string }> {
  const before = upstream.requests.length;
  const head = `${requestLine}\r\n${hostLine === null ? '' : `Host: ${hostLine}\r\n`}Accept: application/json\r\nConnection: close\r\n\r\n`;
  const outcome = await rawExchange(port, Buffer.from(head, 'utf8'));
  expect(outcome.how, `${hostLine}: ${outcome.error ?? ''}`).not.toBe('timeout');
  return { status: statusCodes(outcome.data)[0] ?? 0, reached: upstream.requests.length > before, data: outcome.data };
}

describe('Host header handling: only our own names are routed', () => {
  const notOurs: Array<[string, string | null, number]> = [
    ['a foreign name (DNS rebinding)', 'evil.com', 421],
    ['a foreign name with a port', `evil.com:${80}`, 421],
    ['our name as a prefix of a foreign one', `${OURS}.evil.com`, 421],
    ['localhost as a label of a foreign name', 'localhost.evil.com', 421],
    ['an IPv4 literal', '127.0.0.1', 421],
    ['an IPv4 literal with a port', '127.0.0.1:7080', 421],
    ['a decimal IPv4 literal', '2130706433', 421],
    ['a hex IPv4 literal', '0x7f000001', 421],
    ['a short IPv4 literal', '127.1', 421],
    ['a bracketed IPv6 literal', '[::1]', 421],
    ['a bracketed IPv6 literal with a port', '[::1]:7080', 421],
    ['a bare IPv6 literal', '::1', 421],
    ['an over-long name (300 characters)', `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(30)}.localhost`, 400],
    ['a 64-character label', `${'a'.repeat(64)}.feature-x.localhost`, 400],
    ['an empty Host', '', 400],
    ['unicode (raw UTF-8)', 'apí.feature-x.localhost', 400],
    ['a wildcard', '*.localhost', 400],
    ['two trailing dots', `${OURS}..`, 400],
    ['an empty label', 'api..localhost', 400],
    ['userinfo', `user@${OURS}`, 400],
    ['a path', `${OURS}/x`, 400],
    ['a space inside', `${OURS} evil.com`, 400],
    ['a port above 65535', `${OURS}:99999`, 400],
    ['a non-numeric port', `${OURS}:http`, 400],
    ['an empty port', `${OURS}:`, 400],
    ['a punycode name we do not route', 'xn--ap-gka.feature-x.localhost', 404],
    ['a name of ours that has no route', 'feature-x.localhost', 404],
  ];
  for (const [what, host, status] of notOurs) {
    it(`${what} (${String(host).slice(0, 40)}) → ${status}, never forwarded`, async () => {
      await hosts.check(async () => {
        const result = await withHost(host);
        expect(result.status).toBe(status);
        expect(result.reached).toBe(false);
      });
    });
  }

  it('no Host header at all is refused with 400 and never forwarded', async () => {
    await hosts.check(async () => {
      const result = await withHost(null);
      expect(result.status).toBe(400);
      expect(result.reached).toBe(false);
    });
  });

  it('bare localhost is the landing page, never forwarded', async () => {
    await hosts.check(async () => {
      const result = await withHost('localhost');
      expect(result.status).toBe(200);
      expect(result.reached).toBe(false);
    });
  });

  const ours: Array<[string, string]> = [
    ['uppercase', OURS.toUpperCase()],
    ['mixed case', 'Api.Feature-X.Localhost'],
    ['one trailing dot', `${OURS}.`],
    ['a port that is not ours', `${OURS}:1234`],
    ['our port', `${OURS}:80`],
    ['surrounding spaces', `  ${OURS}  `],
  ];
  for (const [what, host] of ours) {
    it(`our name with ${what} (${host}) is routed to our upstream`, async () => {
      await hosts.check(async () => {
        const result = await withHost(host);
        expect(result.status).toBe(200);
        expect(result.reached).toBe(true);
        expect(result.data).toContain('upstream saw GET /probe');
      });
    });
  }

  it('an absolute-form target naming another host is not proxied there: the Host decides, the path is kept', async () => {
    await hosts.check(async () => {
      const result = await withHost(OURS, 'GET http://evil.com/steal?x=1 HTTP/1.1');
      expect(result.status).toBe(200);
      expect(result.data).toContain('upstream saw GET /steal?x=1');
      const seen = upstream.requests.at(-1)!;
      expect(seen.headers.host).not.toContain('evil.com');
    });
  });

  it('an absolute-form target naming our host with a foreign Host header is refused (421)', async () => {
    await hosts.check(async () => {
      const result = await withHost('evil.com', `GET http://${OURS}/ HTTP/1.1`);
      expect(result.status).toBe(421);
      expect(result.reached).toBe(false);
    });
  });

  it('CONNECT to a foreign host is never tunnelled', async () => {
    await hosts.check(async () => {
      const before = upstream.connections;
      const outcome = await rawExchange(port, 'CONNECT evil.com:443 HTTP/1.1\r\nHost: evil.com:443\r\n\r\n');
      expect(outcome.how).not.toBe('timeout');
      expect(statusCodes(outcome.data)).not.toContain(200);
      expect(upstream.connections).toBe(before);
    });
  });

  it('CONNECT to our own name is never tunnelled either (devproxy is not a forward proxy)', async () => {
    await hosts.check(async () => {
      const before = upstream.connections;
      const outcome = await rawExchange(port, `CONNECT ${OURS}:80 HTTP/1.1\r\nHost: ${OURS}:80\r\n\r\n`);
      expect(outcome.how).not.toBe('timeout');
      expect(statusCodes(outcome.data)).not.toContain(200);
      expect(upstream.connections).toBe(before);
    });
  });

  it('a second Host header cannot redirect the request: the upstream sees exactly one Host, ours', async () => {
    await hosts.check(async () => {
      const before = upstream.requests.length;
      const outcome = await rawExchange(port, `GET /dup HTTP/1.1\r\nHost: ${OURS}\r\nHost: evil.com\r\nConnection: close\r\n\r\n`);
      const status = statusCodes(outcome.data)[0];
      if (status === 200) {
        const seen = upstream.requests.at(-1)!;
        expect(seen.rawHeaders.filter((_, i) => i % 2 === 0 && seen.rawHeaders[i]!.toLowerCase() === 'host')).toHaveLength(1);
        expect(seen.headers.host).not.toContain('evil.com');
      } else {
        expect(status).toBe(400);
        expect(upstream.requests.length).toBe(before);
      }
    });
  });
});

describe('request smuggling shapes are refused before anything is forwarded', () => {
  /** Each payload tries to hide `GET /smuggled` inside the body of the first request. */
  const shapes: Array<[string, string]> = [
    ['Content-Length and Transfer-Encoding together', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['Transfer-Encoding and Content-Length (reversed order)', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['two different Content-Length headers', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['a Content-Length list', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nContent-Length: 0, 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['obsolete line folding', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['a space before the colon', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nTransfer-Encoding : chunked\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['an obfuscated Transfer-Encoding (xchunked)', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nTransfer-Encoding: xchunked\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['chunked not last (chunked, identity)', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['a bad chunk size', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['a negative chunk size', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['an overflowing chunk size', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['a bare LF chunk terminator', `POST /a HTTP/1.1\r\nHost: ${OURS}\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['a NUL byte in a header value', `GET /a HTTP/1.1\r\nHost: ${OURS}\r\nX-Bad: a\u0000b\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['a bare CR inside a header value', `GET /a HTTP/1.1\r\nHost: ${OURS}\r\nX-Bad: a\rTransfer-Encoding: chunked\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['a header name with a space', `GET /a HTTP/1.1\r\nHost: ${OURS}\r\nBad Header: x\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
    ['an invalid HTTP version', `GET /a HTTP/9.9\r\nHost: ${OURS}\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`],
  ];
  for (const [what, payload] of shapes) {
    it(`${what}: 400 (or cut), and the hidden request never reaches the upstream`, async () => {
      await smuggling.check(async () => {
        const outcome = await rawExchange(port, Buffer.from(payload, 'latin1'));
        expect(outcome.how, 'the proxy must answer or close, not hang').not.toBe('timeout');
        const codes = statusCodes(outcome.data);
        expect(codes.filter((c) => c !== 400), `statuses ${codes.join(',')}`).toEqual([]);
        expect(upstream.requests.some((r) => r.url === '/smuggled')).toBe(false);
      });
    });
  }

  it('a normal client is served after all the smuggling attempts', async () => {
    await smuggling.check(async () => {
      expect((await send(port, OURS, { path: '/after' })).body).toBe('upstream saw GET /after');
    });
  });
});

describe('oversized headers and slowloris', () => {
  it('a 20 KB header gets 431 and is not forwarded', async () => {
    await slow.check(async () => {
      const before = upstream.requests.length;
      const outcome = await rawExchange(port, `GET /big HTTP/1.1\r\nHost: ${OURS}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
      expect(statusCodes(outcome.data)[0]).toBe(431);
      expect(upstream.requests.length).toBe(before);
    });
  });

  it('3,000 small headers (over 16 KB in all) get 431 and are not forwarded', async () => {
    await slow.check(async () => {
      const before = upstream.requests.length;
      const many = Array.from({ length: 3_000 }, (_, i) => `X-Header-${i}: value\r\n`).join('');
      const outcome = await rawExchange(port, `GET /many HTTP/1.1\r\nHost: ${OURS}\r\n${many}\r\n`);
      expect(statusCodes(outcome.data)[0]).toBe(431);
      expect(upstream.requests.length).toBe(before);
    });
  });

  it('an over-long request line is refused and not forwarded', async () => {
    await slow.check(async () => {
      const before = upstream.requests.length;
      const outcome = await rawExchange(port, `GET /${'p'.repeat(20_000)} HTTP/1.1\r\nHost: ${OURS}\r\n\r\n`);
      expect(outcome.how).not.toBe('timeout');
      expect([400, 414, 431]).toContain(statusCodes(outcome.data)[0]);
      expect(upstream.requests.length).toBe(before);
    });
  });

  it('30 slowloris clients (headers that never finish) are cut after the header timeout while a normal client keeps being served', async () => {
    await slow.check(async () => {
      const sockets = await Promise.all(Array.from({ length: 30 }, () => rawConnect(port)));
      const closed = sockets.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())));
      for (const socket of sockets) {
        socket.on('error', () => {});
        socket.on('data', () => {});
        socket.write(`GET /slow HTTP/1.1\r\nHost: ${OURS}\r\n`);
      }
      // Trickle one header byte per socket every 100 ms: each stays "active" but never finishes.
      const trickle = setInterval(() => {
        for (const socket of sockets) if (!socket.destroyed) socket.write('X');
      }, 100);
      try {
        const served: number[] = [];
        const deadline = Date.now() + 4 * HEADERS_TIMEOUT_MS;
        while (Date.now() < deadline && served.length < 200) {
          served.push((await send(port, OURS, { path: '/normal' })).status);
          await new Promise((r) => setTimeout(r, 20));
        }
        expect(served.length).toBeGreaterThan(0);
        expect(served.every((s) => s === 200)).toBe(true);
        await within(Promise.all(closed), 10 * HEADERS_TIMEOUT_MS, 'every slowloris socket to be cut');
      } finally {
        clearInterval(trickle);
        for (const socket of sockets) socket.destroy();
      }
      expect(upstream.requests.some((r) => r.url === '/slow')).toBe(false);
    });
  });

  it('a response slower than the header timeout still completes (the timeout is for client headers only)', async () => {
    await slow.check(async () => {
      const slowUp = await startHttpUpstream((_req, res) => setTimeout(() => res.end('late but fine'), 3 * HEADERS_TIMEOUT_MS));
      try {
        const options: ProxyHandlerOptions = { getTable: () => tableOf(route(OURS, local(slowUp.port))), httpPort: 0 };
        const slowHandler = createProxyHandler(options);
        const slowServer = await startHttpProxy({ handler: slowHandler, port: 0, hosts: ['127.0.0.1'], headersTimeoutMs: HEADERS_TIMEOUT_MS });
        try {
          expect((await send(slowServer.port, OURS)).body).toBe('late but fine');
        } finally {
          await slowServer.close();
          await slowHandler.close();
        }
      } finally {
        await slowUp.close();
      }
    });
  });

  it('a quiet WebSocket outlives the header timeout (the idle cut stops at the upgrade)', async () => {
    await slow.check(async () => {
      const ws = await startWsEcho();
      const options: ProxyHandlerOptions = { getTable: () => tableOf(route(OURS, local(ws.port))), httpPort: 0 };
      const wsHandler = createProxyHandler(options);
      const wsServer = await startHttpProxy({ handler: wsHandler, port: 0, hosts: ['127.0.0.1'], headersTimeoutMs: HEADERS_TIMEOUT_MS });
      const client = new WebSocket(`ws://127.0.0.1:${wsServer.port}/`, { headers: { host: OURS } });
      try {
        await new Promise<void>((resolve, reject) => {
          client.once('open', () => resolve());
          client.once('error', reject);
        });
        await new Promise((r) => setTimeout(r, 3 * HEADERS_TIMEOUT_MS));
        const echoed = new Promise<string>((resolve) => client.once('message', (d) => resolve(String(d))));
        client.send('still here');
        expect(await within(echoed, 2_000, 'the echo after a quiet period')).toBe('still here');
      } finally {
        client.terminate();
        await wsServer.close();
        await wsHandler.close();
        await ws.close();
      }
    });
  });

  it('idle_connection_never_cut: a client that connects and sends nothing is cut after the header timeout', async () => {
    await slow.check(async () => {
      const socket = await rawConnect(port);
      socket.on('error', () => {});
      await within(new Promise<void>((resolve) => socket.once('close', () => resolve())), 10 * HEADERS_TIMEOUT_MS, 'an idle connection to be cut');
    });
  });
});
