import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/git-repo.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { initAndStart, prepareDaemon, type DaemonUnderTest } from './daemon-harness.js';
import { isAlive } from '../../workspace/home.js';
import { adminProof } from '../../daemon/admin-proof.js';
import { rawExchange, statusCodes } from './raw-client.js';

/**
 * The admin API's own router (node's `http`, no fastify) at the edges a router decides, against a
 * real daemon and raw bytes on the wire: which targets reach the public page, what an unmatched
 * or malformed target answers with and without the token, HEAD, body types and the body limit.
 * Where the answer differs from fastify's the case says so; each of those is at least as strict.
 */
const API = 'api.contoso.localhost';
/** fastify's default body limit, which the admin API keeps. */
const LIMIT = 1024 * 1024;

let local: Upstream;
let d: DaemonUnderTest;
let port: number;
let token: string;

beforeAll(async () => {
  local = await startHttpUpstream();
  d = await prepareDaemon(`name: contoso
services:
  api:
    local: { port: ${local.port} }
profiles:
  standard: [api]
default: standard
`);
  await initAndStart(d);
  await waitFor(async () => ((await d.get(API)).status === 200 ? true : undefined), 5_000, 'api routed');
  const info = (await d.info())!;
  port = info.adminPort;
  token = info.token;
});

afterAll(async () => {
  await d?.cleanup();
  await local?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One raw exchange: `method target`, the Host of the admin port, the token when `auth`, extra header lines, a body. */
async function send(method: string, target: string, options: { auth?: boolean; headers?: string[]; body?: string } = {}): Promise<Answer> {
  const lines = [`${method} ${target.replace('PORT', String(port))} HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...(options.auth ? [`Authorization: Bearer ${token}`] : []), ...(options.headers ?? []), 'Connection: close'];
  const outcome = await rawExchange(port, Buffer.from(`${lines.join('\r\n')}\r\n\r\n${options.body ?? ''}`, 'latin1'), 10_000);
  expect(outcome.how, outcome.error ?? '').not.toBe('timeout');
  const [head = '', ...rest] = outcome.data.split('\r\n\r\n');
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: statusCodes(outcome.data)[0] ?? 0, headers, body: rest.join('\r\n\r\n') };
}

/** A JSON POST to `path` with the token. */
function post(path: string, body: string, type: string | null = 'application/json'): Promise<Answer> {
  return send('POST', path, { auth: true, headers: [...(type === null ? [] : [`Content-Type: ${type}`]), `Content-Length: ${Buffer.byteLength(body, 'latin1')}`], body });
}

function errorCode(answer: Answer): string | undefined {
  return (JSON.parse(answer.body) as { error?: { code?: string } }).error?.code;
}

async function daemonRuns(): Promise<void> {
  expect(isAlive((await d.info())!.pid)).toBe(true);
}

describe('the public page', () => {
  it('is served for `/` with a query string, with its CSP and headers', async () => {
    const page = await send('GET', '/?x=1');
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.headers['referrer-policy']).toBe('no-referrer');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.body).toMatch(/<title>devproxy[^<]*<\/title>/);
  });

  it('answers HEAD with the GET headers and no body', async () => {
    const [get, head] = [await send('GET', '/'), await send('HEAD', '/')];
    expect(head.status).toBe(200);
    expect(head.headers['content-security-policy']).toBe(get.headers['content-security-policy']);
    expect(head.headers['content-length']).toBe(get.headers['content-length']);
    expect(head.body).toBe('');
  });

  it.each(['//', '/%2F', '/;x', '/./', '/index.html'])('is not served for %s: without the token that is 401', async (target) => {
    expect((await send('GET', target)).status).toBe(401);
  });

  it.each(['*', 'http://127.0.0.1:PORT'])('is not served for the pathless target %s (fastify served the page): 401 without the token, 404 with it', async (target) => {
    expect((await send('GET', target)).status).toBe(401);
    expect((await send('GET', target, { auth: true })).status).toBe(404);
  });
});

describe('the proof route (the dashboard checks the daemon before it sends the token)', () => {
  const nonce = '0f'.repeat(32);

  it('answers without the token with the HMAC of the nonce and the port it listens on, and nothing else', async () => {
    const answer = await send('GET', `/proof?nonce=${nonce}`);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ proof: adminProof(token, nonce, port) });
    expect(answer.body).not.toContain(token);
  });

  it.each([
    ['no nonce', '/proof'],
    ['a short nonce', `/proof?nonce=${nonce.slice(2)}`],
    ['a nonce carrying a port', `/proof?nonce=${nonce.slice(0, 60)}:${port}`],
    ['two nonces', `/proof?nonce=${nonce}&nonce=${nonce}`],
  ])('refuses %s (400)', async (_what, target) => {
    const answer = await send('GET', target);
    expect(answer.status).toBe(400);
    expect(errorCode(answer)).toBe('DEVPROXY_ERR_USAGE');
  });

  it('is GET only: POST wants the token, then matches nothing', async () => {
    expect((await send('POST', `/proof?nonce=${nonce}`)).status).toBe(401);
  });
});

describe('targets that reach no route', () => {
  it.each(['//api/status', '/api//status', '/api/status/', '/API/STATUS', '/nope'])('%s: 401 without the token, 404 with a catalogue code with it', async (target) => {
    expect((await send('GET', target)).status).toBe(401);
    const answer = await send('GET', target, { auth: true });
    expect(answer.status).toBe(404);
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(errorCode(answer)).toBe('DEVPROXY_ERR_USAGE');
  });

  it('a malformed percent-escape wants the token first (fastify answered 400 before it), then is 400', async () => {
    expect((await send('GET', '/api/status%zz')).status).toBe(401);
    const answer = await send('GET', '/api/status%zz', { auth: true });
    expect(answer.status).toBe(400);
    expect(errorCode(answer)).toBe('DEVPROXY_ERR_USAGE');
  });

  it('a long route parameter is looked up like any other (fastify answered 414 past 100 characters)', async () => {
    const answer = await send('GET', `/api/requests/${'9'.repeat(200)}`, { auth: true });
    expect(answer.status).toBe(404);
    expect(errorCode(answer)).toBe('DEVPROXY_ERR_REQUEST_NOT_FOUND');
  });

  it('an overlong request target is refused by node before any route (431)', async () => {
    expect((await send('GET', `/api/status?${'a'.repeat(20_000)}`)).status).toBe(431);
    await daemonRuns();
  });
});

describe('API routes', () => {
  it('answer HEAD of a GET route with its headers and no body', async () => {
    const [get, head] = [await send('GET', '/api/status?probe=0', { auth: true }), await send('HEAD', '/api/status?probe=0', { auth: true })];
    expect(get.status).toBe(200);
    expect(head.status).toBe(200);
    expect(head.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Number(head.headers['content-length'])).toBeGreaterThan(0);
    expect(head.body).toBe('');
    expect(JSON.parse(get.body)).toHaveProperty('worktrees');
  });

  it('read a query parameter given once, percent-decoded', async () => {
    const answer = await send('GET', '/api/requests?limit=%30', { auth: true });
    expect(answer.status).toBe(200);
    expect((JSON.parse(answer.body) as { entries: unknown[] }).entries).toEqual([]);
  });

  it('keep a connection for the next request, which is checked on its own', async () => {
    const head = `GET /api/status?probe=0 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\n\r\nGET /api/status?probe=0 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`;
    const outcome = await rawExchange(port, head, 10_000);
    expect(statusCodes(outcome.data)).toEqual([200, 401]);
  });
});

describe('request bodies', () => {
  it('accept JSON with parameters in its Content-Type', async () => {
    const answer = await post('/api/restart', JSON.stringify({ path: '/nowhere', service: 'api' }), 'application/json; charset=utf-8');
    expect(answer.status).toBe(404);
    expect(errorCode(answer)).toBe('DEVPROXY_ERR_UNKNOWN_WORKTREE');
  });

  it('may be absent without a Content-Type (the CLI reloads and stops that way)', async () => {
    const answer = await send('POST', '/api/reload', { auth: true, headers: ['Content-Length: 0'] });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toHaveProperty('worktrees');
  });

  it.each([
    ['application/xml', '<a/>'],
    ['application/x-www-form-urlencoded', 'path=/'],
    ['application/vnd.api+json', '{}'],
  ])('of type %s are 415', async (type, body) => {
    const answer = await post('/api/restart', body, type);
    expect(answer.status).toBe(415);
    expect(errorCode(answer)).toBe('DEVPROXY_ERR_USAGE');
  });

  it('without a Content-Type are 415', async () => {
    const answer = await post('/api/restart', '{}', null);
    expect(answer.status).toBe(415);
  });

  it.each([
    ['empty', ''],
    ['not JSON', '{"path":'],
    ['with a __proto__ key', '{"__proto__":{"polluted":1},"path":"/"}'],
    ['with constructor.prototype', '{"constructor":{"prototype":{"polluted":1}}}'],
  ])('that are %s are 400', async (_what, body) => {
    const answer = await post('/api/restart', body);
    expect(answer.status).toBe(400);
    expect(errorCode(answer)).toBe('DEVPROXY_ERR_USAGE');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('up to the limit are read; one byte more is 413, by Content-Length or counted in chunks', async () => {
    const skeleton = JSON.stringify({ path: '/nowhere', pad: '' });
    const fits = skeleton.replace('""', `"${'x'.repeat(LIMIT - skeleton.length)}"`);
    expect(Buffer.byteLength(fits)).toBe(LIMIT);
    expect((await post('/api/restart', fits)).status).toBe(404);
    const over = `${fits} `;
    const declared = await post('/api/restart', over);
    expect(declared.status).toBe(413);
    expect(errorCode(declared)).toBe('DEVPROXY_ERR_USAGE');
    const chunked = await send('POST', '/api/restart', { auth: true, headers: ['Content-Type: application/json', 'Transfer-Encoding: chunked'], body: `${over.length.toString(16)}\r\n${over}\r\n0\r\n\r\n` });
    expect(chunked.status).toBe(413);
    await daemonRuns();
  });

  it('over the limit without the token are 401, not read', async () => {
    const body = 'x'.repeat(2 * LIMIT);
    const answer = await send('POST', '/api/restart', { headers: ['Content-Type: application/json', `Content-Length: ${body.length}`], body });
    expect(answer.status).toBe(401);
    await daemonRuns();
  });
});
