import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { waitFor } from '../helpers/git-repo.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { initAndStart, prepareDaemon, type DaemonUnderTest } from './daemon-harness.js';
import { isAlive } from '../../workspace/home.js';
import { rawExchange, statusCodes, within } from './raw-client.js';
import { tally } from './tally.js';

/**
 * Requests shaped to slip past a policy, against a real daemon: the admin API's token check
 * under every spelling of a path, `Upgrade` on a mutating method against `writes: read-only`,
 * remote credentials lent to a foreign page, and the protocol details a proxy must keep
 * (`OPTIONS *`, transfer codings other than chunked).
 */
const adminBypass = tally('admin-auth-bypass');
const upgradeBypass = tally('upgrade-write-policy');
const foreignOrigin = tally('remote-auth-origin');
const nits = tally('protocol-nits');

const SECRET = 'origin-check-secret-4b1d';
const API = 'api.contoso.localhost';
const PAY = 'pay.contoso.localhost';
const QUEUE = 'queue.contoso.localhost';

let local: Upstream;
let remote: Upstream;
let wss: WebSocketServer;
/** Headers of each WebSocket upgrade the remote accepted. */
const remoteUpgrades: http.IncomingHttpHeaders[] = [];
let d: DaemonUnderTest;
let adminPort: number;
let token: string;

beforeAll(async () => {
  local = await startHttpUpstream();
  remote = await startHttpUpstream();
  wss = new WebSocketServer({ server: remote.server as http.Server });
  wss.on('connection', (socket, req) => {
    remoteUpgrades.push(req.headers);
    socket.on('message', (data) => socket.send(data));
  });
  d = await prepareDaemon(`name: contoso
services:
  api:
    local: { port: ${local.port} }
    remote: http://api-dev.localhost:${remote.port}
  pay:
    remote: http://pay-dev.localhost:${remote.port}/v1
    auth: { headers: { x-functions-key: "\${env:DEVPROXY_REL_SECRET}" } }
  queue:
    remote: http://queue-dev.localhost:${remote.port}/q
    writes: { policy: read-only, deny: ["GET /*/messages"] }
    auth: { headers: { x-functions-key: "\${env:DEVPROXY_REL_SECRET}" } }
profiles:
  standard: [api]
default: standard
`);
  d.env.DEVPROXY_REL_SECRET = SECRET;
  await initAndStart(d);
  await waitFor(async () => ((await d.get(API)).status === 200 ? true : undefined), 5_000, 'api routed');
  const info = (await d.info())!;
  adminPort = info.adminPort;
  token = info.token;
});

afterAll(async () => {
  await d?.cleanup();
  for (const client of wss?.clients ?? []) client.terminate();
  wss?.close();
  await Promise.all([local?.close(), remote?.close()]);
});

/** Status and body of one raw HTTP/1.1 exchange (exact bytes on the wire). */
async function raw(port: number, head: string, body = ''): Promise<{ status: number; data: string }> {
  const outcome = await rawExchange(port, Buffer.from(head + body, 'latin1'), 5_000);
  expect(outcome.how, outcome.error ?? '').not.toBe('timeout');
  return { status: statusCodes(outcome.data)[0] ?? 0, data: outcome.data };
}

describe('the admin API wants its token under every spelling of a path', () => {
  const spellings: Array<[string, string, string]> = [
    ['percent-encoded letter', 'GET', '/%61pi/status'],
    ['percent-encoded upper-case letters', 'GET', '/%61%70%69/%73tatus'],
    ['percent-encoded slash', 'GET', '/api%2fstatus'],
    ['upper case', 'GET', '/API/STATUS'],
    ['mixed case', 'GET', '/Api/Status'],
    ['double leading slash', 'GET', '//api/status'],
    ['double inner slash', 'GET', '/api//status'],
    ['dot segment', 'GET', '/./api/status'],
    ['dot-dot segment', 'GET', '/x/../api/status'],
    ['encoded dot-dot segment', 'GET', '/x/%2e%2e/api/status'],
    ['trailing slash', 'GET', '/api/status/'],
    ['matrix parameter', 'GET', '/api/status;x=1'],
    ['query only', 'GET', '/api/status?probe=0'],
    ['fragment-looking suffix', 'GET', '/api/status%23x'],
    ['HEAD of the encoded path', 'HEAD', '/%61pi/status'],
    ['logs, encoded', 'GET', '/%61pi/logs?path=/&service=api'],
    ['an unknown path', 'GET', '/nope'],
    ['absolute form', 'GET', 'http://127.0.0.1:PORT/api/status'],
    ['absolute form, encoded path', 'GET', 'http://127.0.0.1:PORT/%61pi/status'],
    ['absolute form naming another authority', 'GET', 'http://evil.example/api/status'],
    ['absolute form, upper-case scheme', 'GET', 'HTTP://127.0.0.1:PORT/api/status'],
    ['absolute form with userinfo', 'GET', 'http://user:pw@127.0.0.1:PORT/api/status'],
    ['reload, encoded', 'POST', '/%61pi/reload'],
    ['restart, absolute form', 'POST', 'http://127.0.0.1:PORT/api/restart'],
    ['remove-worktree, case variant', 'POST', '/API/remove-worktree'],
    ['stop, encoded', 'POST', '/%61pi/stop'],
    ['stop, absolute form', 'POST', 'http://127.0.0.1:PORT/api/stop'],
    ['stop, double slash', 'POST', '//api/stop'],
    ['stop, dot-dot', 'POST', '/a/../api/stop'],
    ['dashboard events, encoded', 'GET', '/%61pi/events'],
    ['dashboard requests, absolute form', 'GET', 'http://127.0.0.1:PORT/api/requests'],
    ['dashboard recording switch, case variant', 'PUT', '/API/requests/recording'],
    ['dashboard profile change, encoded', 'POST', '/%61pi/profile'],
  ];
  for (const [what, method, target] of spellings) {
    it(`${what}: ${method} ${target} without the token → 401`, async () => {
      await adminBypass.check(async () => {
        const path = target.replace('PORT', String(adminPort));
        const body = method === 'POST' || method === 'PUT' ? '{}' : '';
        const head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${adminPort}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
        const res = await raw(adminPort, head, body);
        expect(res.status, res.data).toBe(401);
        expect(res.data).not.toContain('"worktrees"');
        expect(res.data).not.toContain('stopping');
        expect(isAlive((await d.info())!.pid)).toBe(true);
      });
    });
  }

  it('the dashboard page alone is served without the token, and the token still opens the API', async () => {
    await adminBypass.check(async () => {
      const page = await raw(adminPort, `GET / HTTP/1.1\r\nHost: 127.0.0.1:${adminPort}\r\nConnection: close\r\n\r\n`);
      expect(page.status).toBe(200);
      expect(page.data).toMatch(/<title>devproxy[^<]*<\/title>/);
      expect(page.data).not.toContain(d.repo.main);
      const api = await raw(adminPort, `GET /api/status?probe=0 HTTP/1.1\r\nHost: 127.0.0.1:${adminPort}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
      expect(api.status).toBe(200);
      expect(api.data).toContain('"worktrees"');
      expect(isAlive((await d.info())!.pid)).toBe(true);
    });
  });
});

/** One request through the proxy on a fresh connection; resolves status, headers and body. */
function request(host: string, options: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders; body?: string } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const length = options.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(options.body)) };
    const req = http.request(
      { host: '127.0.0.1', port: d.httpPort, method: options.method ?? 'GET', path: options.path ?? '/', headers: { host, accept: 'application/json', ...length, ...options.headers }, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('Upgrade on anything but a GET WebSocket handshake is an ordinary request', () => {
  const wsHeaders = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' };
  for (const method of ['DELETE', 'PUT', 'POST', 'PATCH']) {
    it(`${method} with Upgrade: websocket to a read-only remote → 403, the remote sees nothing`, async () => {
      await upgradeBypass.check(async () => {
        const before = remote.requests.length;
        const upgradesBefore = remoteUpgrades.length;
        const res = await within(request(QUEUE, { method, path: '/messages/1', headers: wsHeaders, body: method === 'DELETE' ? undefined : '{"x":1}' }), 10_000, method);
        expect(res.status, res.body).toBe(403);
        expect(res.body).toContain('DEVPROXY_ERR_READ_ONLY');
        expect(remote.requests.length).toBe(before);
        expect(remoteUpgrades.length).toBe(upgradesBefore);
      });
    });
  }

  it('the same over raw bytes with a chunked body → 403, the remote sees nothing', async () => {
    await upgradeBypass.check(async () => {
      const before = remote.requests.length;
      const res = await raw(
        d.httpPort,
        `PUT /messages/1 HTTP/1.1\r\nHost: ${QUEUE}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
        '5\r\nhello\r\n0\r\n\r\n',
      );
      expect(res.status, res.data).toBe(403);
      expect(remote.requests.length).toBe(before);
    });
  });

  it('DELETE with Upgrade to a read-write remote is forwarded as a plain DELETE, body included', async () => {
    await upgradeBypass.check(async () => {
      const res = await within(request(PAY, { method: 'DELETE', path: '/items/7', headers: wsHeaders, body: 'gone' }), 10_000, 'delete');
      expect(res.status, res.body).toBe(200);
      const seen = JSON.parse(res.body) as { method: string; url: string; headers: http.IncomingHttpHeaders; body: string };
      expect(seen.method).toBe('DELETE');
      expect(seen.url).toBe('/v1/items/7');
      expect(seen.body).toBe('gone');
      expect(seen.headers.upgrade).toBeUndefined();
      expect(String(seen.headers.connection ?? '')).not.toMatch(/upgrade/i);
    });
  });

  it('over HTTPS (HTTP/1.1): DELETE with Upgrade is refused by read-only and forwarded plain elsewhere', async () => {
    await upgradeBypass.check(async () => {
      const httpsPort = (await d.info())!.httpsPort!;
      const overTls = (host: string, path: string): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          const req = https.request(
            { host: '127.0.0.1', port: httpsPort, servername: host, method: 'DELETE', path, headers: { host, accept: 'application/json', ...wsHeaders }, rejectUnauthorized: false, agent: false },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
            },
          );
          req.on('upgrade', (res, socket) => {
            socket.destroy();
            resolve({ status: res.statusCode ?? 0, body: '' });
          });
          req.on('error', reject);
          req.end();
        });
      const before = remote.requests.length;
      const refused = await within(overTls(QUEUE, '/messages/1'), 10_000, 'https delete to read-only');
      expect(refused.status, refused.body).toBe(403);
      expect(remote.requests.length).toBe(before);
      const forwarded = await within(overTls(PAY, '/items/8'), 10_000, 'https delete to read-write');
      expect(forwarded.status, forwarded.body).toBe(200);
      expect(JSON.parse(forwarded.body)).toMatchObject({ method: 'DELETE', url: '/v1/items/8' });
    });
  });

  it('GET with a non-WebSocket Upgrade (h2c) is answered as a plain GET', async () => {
    await upgradeBypass.check(async () => {
      const res = await within(request(API, { path: '/plain', headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQAoAAAAAIAAAAA' } }), 10_000, 'h2c');
      expect(res.status).toBe(200);
      const seen = JSON.parse(res.body) as { method: string; url: string; headers: http.IncomingHttpHeaders };
      expect(seen.method).toBe('GET');
      expect(seen.headers.upgrade).toBeUndefined();
    });
  });

  it('a keep-alive connection still serves the next request after an ignored Upgrade', async () => {
    await upgradeBypass.check(async () => {
      const res = await raw(
        d.httpPort,
        `DELETE /a HTTP/1.1\r\nHost: ${PAY}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n` + `GET /b HTTP/1.1\r\nHost: ${PAY}\r\nConnection: close\r\n\r\n`,
      );
      expect(statusCodes(res.data)).toEqual([200, 200]);
      expect(res.data).toContain('"url":"/v1/a"');
      expect(res.data).toContain('"url":"/v1/b"');
    });
  });

  it('a GET WebSocket to a path the read-only remote denies → 403, the remote sees no upgrade', async () => {
    await upgradeBypass.check(async () => {
      const upgradesBefore = remoteUpgrades.length;
      const ws = new WebSocket(`ws://127.0.0.1:${d.httpPort}/q1/messages`, { headers: { host: QUEUE } });
      const status = await within(
        new Promise<number>((resolve, reject) => {
          ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
          ws.once('open', () => resolve(101));
          ws.once('error', reject);
        }),
        10_000,
        'denied websocket',
      );
      ws.terminate();
      expect(status).toBe(403);
      expect(remoteUpgrades.length).toBe(upgradesBefore);
    });
  });

  it('a GET WebSocket to the read-only remote still opens (and echoes)', async () => {
    await upgradeBypass.check(async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${d.httpPort}/socket`, { headers: { host: QUEUE } });
      const echoed = await within(
        new Promise<string>((resolve, reject) => {
          ws.once('open', () => ws.send('ping'));
          ws.once('message', (data) => resolve(String(data)));
          ws.once('error', reject);
        }),
        10_000,
        'websocket echo',
      );
      ws.terminate();
      expect(echoed).toBe('ping');
    });
  });
});

describe('remote credentials are injected only for the worktree’s own pages', () => {
  async function keySeen(headers: http.OutgoingHttpHeaders, method = 'GET'): Promise<string | undefined> {
    const res = await within(request(PAY, { method, path: '/who', headers, ...(method === 'POST' ? { body: 'a=1' } : {}) }), 10_000, 'request');
    expect(res.status, res.body).toBe(200);
    const seen = JSON.parse(res.body) as { headers: http.IncomingHttpHeaders };
    return seen.headers['x-functions-key'] as string | undefined;
  }

  const withheld: Array<[string, () => http.OutgoingHttpHeaders, string?]> = [
    ['a foreign Origin', () => ({ origin: 'https://evil.example' })],
    ['a foreign Origin on a form POST', () => ({ origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' }), 'POST'],
    ['a null Origin (sandboxed frame, data: URL)', () => ({ origin: 'null' })],
    ['Sec-Fetch-Site: cross-site without Origin', () => ({ 'sec-fetch-site': 'cross-site' })],
    ['an Origin of our host on another port', () => ({ origin: `http://${PAY}:1` })],
    ['an Origin of our host over the other scheme', () => ({ origin: `https://${PAY}:${d.httpPort}` })],
    ['an Origin of another worktree', () => ({ origin: `http://pay.other.localhost:${d.httpPort}` })],
    ['an Origin that only starts like ours', () => ({ origin: `http://${PAY}.evil.example:${d.httpPort}` })],
    ['our Origin but Sec-Fetch-Site: cross-site', () => ({ origin: `http://${API}:${d.httpPort}`, 'sec-fetch-site': 'cross-site' })],
  ];
  for (const [what, headersOf, method] of withheld) {
    it(`${what} → the remote gets no credentials`, async () => {
      await foreignOrigin.check(async () => {
        expect(await keySeen(headersOf(), method)).toBeUndefined();
      });
    });
  }

  const injected: Array<[string, () => http.OutgoingHttpHeaders]> = [
    ['no Origin (curl, a server-side app)', () => ({})],
    ['the Origin of a service of the same worktree', () => ({ origin: `http://${API}:${d.httpPort}` })],
    ['its own Origin', () => ({ origin: `http://${PAY}:${d.httpPort}` })],
    ['the localhost landing page', () => ({ origin: `http://localhost:${d.httpPort}` })],
    ['Sec-Fetch-Site: same-origin', () => ({ origin: `http://${PAY}:${d.httpPort}`, 'sec-fetch-site': 'same-origin' })],
    ['Sec-Fetch-Site: none (typed in the address bar)', () => ({ 'sec-fetch-site': 'none' })],
  ];
  for (const [what, headersOf] of injected) {
    it(`${what} → the remote gets the credentials`, async () => {
      await foreignOrigin.check(async () => {
        expect(await keySeen(headersOf())).toBe(SECRET);
      });
    });
  }

  async function upgradeKey(origin: string | undefined): Promise<string | undefined> {
    const before = remoteUpgrades.length;
    const ws = new WebSocket(`ws://127.0.0.1:${d.httpPort}/socket`, { headers: { host: PAY }, ...(origin === undefined ? {} : { origin }) });
    await within(
      new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      }),
      10_000,
      'websocket open',
    );
    ws.terminate();
    expect(remoteUpgrades.length).toBe(before + 1);
    return remoteUpgrades.at(-1)!['x-functions-key'] as string | undefined;
  }

  it('the daemon log says once per page origin that credentials were withheld, and never shows them', async () => {
    await foreignOrigin.check(async () => {
      const log = await readFile(join(d.home, 'logs', 'daemon.log'), 'utf8');
      const notices = log.split('\n').filter((line) => line.includes('credentials withheld') && line.includes('https://evil.example'));
      expect(notices.length, log).toBe(1);
      expect(log).not.toContain(SECRET);
    });
  });

  it('a WebSocket opened by a foreign page reaches the remote without credentials', async () => {
    await foreignOrigin.check(async () => {
      expect(await upgradeKey('https://evil.example')).toBeUndefined();
    });
  });

  it('a WebSocket of the worktree’s own page, or without Origin, carries the credentials', async () => {
    await foreignOrigin.check(async () => {
      expect(await upgradeKey(`http://${API}:${d.httpPort}`)).toBe(SECRET);
      expect(await upgradeKey(undefined)).toBe(SECRET);
    });
  });
});

describe('protocol details survive the proxy', () => {
  for (const [what, host, expected] of [
    ['a local route', API, '*'],
    ['a remote route with a base path', PAY, '*'],
  ] as const) {
    it(`OPTIONS * to ${what} reaches the upstream as OPTIONS *`, async () => {
      await nits.check(async () => {
        const upstream = host === API ? local : remote;
        const before = upstream.requests.length;
        const res = await raw(d.httpPort, `OPTIONS * HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        expect(res.status, res.data).toBe(200);
        expect(upstream.requests.length).toBe(before + 1);
        expect(upstream.requests.at(-1)).toMatchObject({ method: 'OPTIONS', url: expected });
      });
    });
  }

  it('OPTIONS * to a read-only remote is allowed (a safe method)', async () => {
    await nits.check(async () => {
      const res = await raw(d.httpPort, `OPTIONS * HTTP/1.1\r\nHost: ${QUEUE}\r\nConnection: close\r\n\r\n`);
      expect(res.status, res.data).toBe(200);
      expect(remote.requests.at(-1)).toMatchObject({ method: 'OPTIONS', url: '*' });
    });
  });

  for (const coding of ['gzip, chunked', 'deflate, chunked', 'br,chunked', 'x-custom, chunked']) {
    it(`Transfer-Encoding: ${coding} is refused with 501, never forwarded as identity`, async () => {
      await nits.check(async () => {
        const before = local.requests.length;
        const res = await raw(d.httpPort, `POST /upload HTTP/1.1\r\nHost: ${API}\r\nTransfer-Encoding: ${coding}\r\nConnection: close\r\n\r\n`, '3\r\nabc\r\n0\r\n\r\n');
        expect(res.status, res.data).toBe(501);
        expect(res.data).toContain('DEVPROXY_ERR_TRANSFER_CODING');
        expect(local.requests.length).toBe(before);
      });
    });
  }

  it('Transfer-Encoding: chunked alone is still forwarded', async () => {
    await nits.check(async () => {
      const res = await raw(d.httpPort, `POST /upload HTTP/1.1\r\nHost: ${API}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`, '3\r\nabc\r\n0\r\n\r\n');
      expect(res.status, res.data).toBe(200);
      expect(res.data).toContain('"body":"abc"');
    });
  });
});
