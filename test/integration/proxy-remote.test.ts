import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyHandlerOptions } from '../../proxy/server.js';
import type { RoutingTable } from '../../router/types.js';
import { remote, route, tableOf, type RemoteSpec } from '../helpers/routes.js';
import { createTestTls, send, startHttpsUpstream, type TestTls, type Upstream } from '../helpers/upstreams.js';
import type { RequestListener } from 'node:http';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const API = 'api.feature-x.localhost';
/** The remote's public name: Host and SNI. The pool still connects to 127.0.0.1 (the origin). */
const REMOTE_HOST = 'api-dev.test-remote.localhost';

let tls: TestTls;
let otherNameTls: TestTls;
beforeAll(async () => {
  tls = await createTestTls([REMOTE_HOST]);
  otherNameTls = await createTestTls(['someone-else.test-remote.localhost']);
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'devproxy-remote-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function caFileOf(pem: string): Promise<string> {
  const file = join(await tempDir(), 'ca.pem');
  await writeFile(file, pem);
  return file;
}

async function httpsUpstream(handler?: RequestListener, serverTls: TestTls = tls): Promise<Upstream> {
  const up = await startHttpsUpstream(serverTls, handler);
  cleanups.push(() => up.close());
  return up;
}

function proxy(table: RoutingTable, extra: Partial<ProxyHandlerOptions> = {}): Promise<TestProxy> {
  return startTestProxy(table, cleanups, extra);
}

function remoteOf(up: Upstream, spec: Partial<RemoteSpec> = {}) {
  // authority without the port: the remote sees exactly its public name, as Azure does.
  return remote({ origin: up.origin, hostname: REMOTE_HOST, authority: REMOTE_HOST, ...spec });
}

describe('proxy forwarding to remote targets over HTTPS', () => {
  it('sends Host and SNI as the remote hostname, prefixes basePath and verifies TLS with the route CA', async () => {
    const up = await httpsUpstream();
    const ca = await caFileOf(tls.caPem);
    const p = await proxy(tableOf(route(API, remoteOf(up, { basePath: '/v1', caFiles: [ca] }))));
    const res = await send(p.port, `${API}:${p.port}`, { method: 'POST', path: '/items?x=1', body: 'hello' });
    expect(res.status).toBe(200);
    expect(res.headers['x-devproxy-route']).toBe('remote');
    const echo = JSON.parse(res.body) as { url: string; body: string; headers: Record<string, string> };
    expect(echo.url).toBe('/v1/items?x=1');
    expect(echo.body).toBe('hello');
    expect(echo.headers.host).toBe(REMOTE_HOST);
    expect(echo.headers['x-forwarded-host']).toBe(`${API}:${p.port}`);
    expect(up.requests[0]?.servername).toBe(REMOTE_HOST);
  });

  it('reuses TLS connections to the remote across requests', async () => {
    const up = await httpsUpstream();
    const ca = await caFileOf(tls.caPem);
    const p = await proxy(tableOf(route(API, remoteOf(up, { caFiles: [ca] }))));
    for (let i = 0; i < 20; i++) expect((await send(p.port, API)).status).toBe(200);
    expect(up.requests).toHaveLength(20);
    expect(up.connections).toBeLessThanOrEqual(2);
  });

  it('refuses a remote whose CA is not trusted with a 502 naming the TLS error', async () => {
    const up = await httpsUpstream();
    const p = await proxy(tableOf(route(API, remoteOf(up))));
    const res = await send(p.port, API, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(502);
    expect(res.headers['x-devproxy-route']).toBe('remote');
    const error = JSON.parse(res.body).error;
    expect(error.code).toBe('DEVPROXY_ERR_UPSTREAM_TLS');
    expect(error.message).toContain(REMOTE_HOST);
    expect(error.message).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    expect(error.target).toBe(up.origin);
    expect(up.requests).toHaveLength(0);
    expect(p.warnings.some((w) => w.includes('UNABLE_TO_VERIFY_LEAF_SIGNATURE'))).toBe(true);
  });

  it('refuses a certificate that does not cover the remote hostname', async () => {
    const up = await httpsUpstream(undefined, otherNameTls);
    const ca = await caFileOf(otherNameTls.caPem);
    const p = await proxy(tableOf(route(API, remoteOf(up, { caFiles: [ca] }))));
    const res = await send(p.port, API);
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body).error.message).toContain('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('names an unreadable CA file on the 502 page', async () => {
    const up = await httpsUpstream();
    const missing = join(await tempDir(), 'missing-ca.pem');
    const p = await proxy(tableOf(route(API, remoteOf(up, { caFiles: [missing] }))));
    const res = await send(p.port, API);
    expect(res.status).toBe(502);
    const error = JSON.parse(res.body).error;
    expect(error.code).toBe('DEVPROXY_ERR_UPSTREAM_TLS');
    expect(error.message).toContain(`the CA file ${missing} cannot be read (ENOENT)`);
    expect(up.requests).toHaveLength(0);
  });

  it('skips verification for an insecure remote only', async () => {
    const up = await httpsUpstream();
    const p = await proxy(
      tableOf(route(API, remoteOf(up, { insecure: true })), route('ui.feature-x.localhost', remoteOf(up))),
    );
    expect((await send(p.port, API)).status).toBe(200);
    expect((await send(p.port, 'ui.feature-x.localhost')).status).toBe(502);
  });

  it('trusts the proxy-wide extra CA files and NODE_EXTRA_CA_CERTS', async () => {
    const up = await httpsUpstream();
    const ca = await caFileOf(tls.caPem);
    const viaOption = await proxy(tableOf(route(API, remoteOf(up))), { extraCaFiles: [ca] });
    expect((await send(viaOption.port, API)).status).toBe(200);

    const previous = process.env.NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = ca;
    cleanups.push(() => {
      if (previous === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
      else process.env.NODE_EXTRA_CA_CERTS = previous;
    });
    const viaEnv = await proxy(tableOf(route(API, remoteOf(up))));
    expect((await send(viaEnv.port, API)).status).toBe(200);
  });

  it('rewrites Location at the remote back to the stable URL and leaves relative ones alone', async () => {
    const up = await httpsUpstream((req, res) => {
      const location = req.url === '/v1/absolute' ? `https://${REMOTE_HOST}/v1/login?next=%2F#top` : req.url === '/v1/plain-http' ? `http://${REMOTE_HOST}/v1` : req.url === '/v1/elsewhere' ? 'https://login.example/' : '/v1/relative';
      res.writeHead(302, { location });
      res.end();
    });
    const ca = await caFileOf(tls.caPem);
    const p = await proxy(tableOf(route(API, remoteOf(up, { basePath: '/v1', caFiles: [ca] }))));
    expect((await send(p.port, API, { path: '/absolute' })).headers.location).toBe(`http://${API}:${p.port}/login?next=%2F#top`);
    expect((await send(p.port, API, { path: '/plain-http' })).headers.location).toBe(`http://${API}:${p.port}/`);
    expect((await send(p.port, API, { path: '/elsewhere' })).headers.location).toBe('https://login.example/');
    expect((await send(p.port, API, { path: '/relative' })).headers.location).toBe('/v1/relative');
  });

  it('makes remote cookies host-only on the stable host and drops Secure over plain HTTP', async () => {
    const up = await httpsUpstream((_req, res) => {
      res.setHeader('set-cookie', [
        'sid=abc; Domain=test-remote.localhost; Path=/; Secure; HttpOnly; SameSite=None',
        `pref=1; Domain=.${REMOTE_HOST}; Max-Age=60`,
        'other=2; Domain=example.org',
      ]);
      res.end('ok');
    });
    const ca = await caFileOf(tls.caPem);
    const p = await proxy(tableOf(route(API, remoteOf(up, { caFiles: [ca] }))));
    const res = await send(p.port, API);
    expect(res.headers['set-cookie']).toEqual(['sid=abc; Path=/; HttpOnly', 'pref=1; Max-Age=60', 'other=2; Domain=example.org']);
  });
});
