import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildStatus } from '../../workspace/status.js';
import { remoteTls, startRemote, remoteWorktreeFor, type RemoteWorktree, type RemoteWorktreeOptions } from '../helpers/remote-worktree.js';
import { loopbackLookup } from '../../proxy/upstream-pools.js';
import { echoHandler, send, startHttpUpstream, type TestResponse, type Upstream } from '../helpers/upstreams.js';

const SECRET = 'planted-secret-7f3a9c0e';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function remoteUpstream(handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<Upstream> {
  const up = await startRemote(handler);
  cleanups.push(() => up.close());
  return up;
}

const worktree = (options: RemoteWorktreeOptions): Promise<RemoteWorktree> => remoteWorktreeFor(cleanups, options);

function echoed(res: TestResponse): { method: string; url: string; headers: Record<string, string> } {
  return JSON.parse(res.body) as { method: string; url: string; headers: Record<string, string> };
}

describe('auth on the remote hop', () => {
  it('injects a function key from the environment on the remote hop only, and never logs or shows it', async () => {
    // The stand-in remote refuses requests without the key, as Azure Functions does.
    const api = await remoteUpstream((req, res) => {
      if (req.headers['x-functions-key'] !== SECRET) {
        res.writeHead(401).end('missing key');
        return;
      }
      echoHandler(req, res);
    });
    const ui = await startHttpUpstream();
    cleanups.push(() => ui.close());
    const wt = await worktree({
      services: `  ui: { local: { port: \${port:ui} } }
  api:
    remote: https://contoso-api-dev.localhost:\${port:api}
    auth: { headers: { x-functions-key: "\${env:API_FUNCTIONS_KEY}" } }
    writes: read-only`,
      upstreams: { api, ui },
      locals: ['ui'],
      proxy: { env: { API_FUNCTIONS_KEY: SECRET } },
    });
    const host = `api.x.localhost:${wt.port}`;

    const ok = await send(wt.port, host, { path: '/items', headers: { 'x-functions-key': 'client-chosen' } });
    expect(ok.status).toBe(200);
    expect(echoed(ok).headers['x-functions-key']).toBe(SECRET);
    expect(echoed(ok).headers.host).toBe(`contoso-api-dev.localhost:${api.port}`);
    expect(ok.body.split(SECRET).length - 1).toBe(1); // only the upstream's own echo of its request

    const local = await send(wt.port, `ui.x.localhost:${wt.port}`, { path: '/' });
    expect(local.status).toBe(200);
    expect(echoed(local).headers['x-functions-key']).toBeUndefined();
    expect(echoed(local).headers['x-devproxy-worktree']).toBeUndefined();

    // Pages devproxy writes itself: read-only refusal, unknown host, a failed local route.
    const pages = await Promise.all([
      send(wt.port, host, { method: 'POST', body: '{}', headers: { accept: 'text/html' } }),
      send(wt.port, host, { method: 'DELETE', headers: { accept: 'application/json' } }),
      send(wt.port, `nope.x.localhost:${wt.port}`, { headers: { accept: 'text/html' } }),
    ]);
    expect(pages.map((p) => p.status)).toEqual([403, 403, 404]);
    await ui.close();
    const down = await send(wt.port, `ui.x.localhost:${wt.port}`, { headers: { accept: 'text/html' } });
    expect(down.status).toBe(502);

    const status = JSON.stringify(buildStatus(wt.table, { running: true, pid: 1, httpPort: wt.port, httpsPort: null, version: 'test' }));
    expect(status).toContain('api.x.localhost');
    for (const text of [...pages.map((p) => p.body + JSON.stringify(p.headers)), down.body, status, wt.logs.join('\n')]) {
      expect(text).not.toContain(SECRET);
    }
    expect(wt.logs.some((l) => l.includes('POST refused'))).toBe(true);
  });

  it('answers a 502 naming the unset variable instead of calling the remote without its key', async () => {
    const api = await remoteUpstream();
    const wt = await worktree({
      services: `  api:
    remote: https://contoso-api-dev.localhost:\${port:api}
    auth: { headers: { ocp-apim-subscription-key: "\${env:APIM_KEY}" } }`,
      upstreams: { api },
      proxy: { env: {} },
    });
    const res = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(502);
    const { error } = JSON.parse(res.body) as { error: { code: string; message: string; hint: string } };
    expect(error.code).toBe('DEVPROXY_ERR_ENV_UNSET');
    expect(error.message).toContain('APIM_KEY');
    expect(error.message).toContain('ocp-apim-subscription-key');
    expect(error.hint).toContain('export APIM_KEY=');
    expect(api.requests).toHaveLength(0);
  });

  it('reads a key from a ${file:…} reference relative to the repository', async () => {
    const api = await remoteUpstream();
    const wt = await worktree({
      services: `  api:
    remote: https://contoso-api-dev.localhost:\${port:api}
    auth: { headers: { ocp-apim-subscription-key: "\${file:apim.key}" } }`,
      upstreams: { api },
      proxy: { env: {} },
    });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(`${wt.dir}/apim.key`, `${SECRET}\n`);
    const res = await send(wt.port, `api.x.localhost:${wt.port}`);
    expect(res.status).toBe(200);
    expect(echoed(res).headers['ocp-apim-subscription-key']).toBe(SECRET);
  });
});

describe('writes: read-only', () => {
  const services = `  api:
    remote: https://contoso-api-dev.localhost:\${port:api}
    writes: read-only`;

  it('refuses mutating methods with a 403 naming the policy and the override, without reaching the remote; safe methods pass', async () => {
    const api = await remoteUpstream();
    const wt = await worktree({ services, upstreams: { api } });
    const host = `api.x.localhost:${wt.port}`;
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const res = await send(wt.port, host, { method, body: '{"a":1}', headers: { accept: 'application/json', 'content-type': 'application/json' } });
      expect(res.status).toBe(403);
      const { error } = JSON.parse(res.body) as { error: { code: string; message: string; hint: string; service: string } };
      expect(error.code).toBe('DEVPROXY_ERR_READ_ONLY');
      expect(error.message).toContain('writes: read-only');
      expect(error.service).toBe('api');
      expect(error.hint).toContain('writes: { api: read-write }');
      expect(error.hint).toContain(`${wt.dir}/.devproxy/profile.yaml`);
    }
    const html = await send(wt.port, host, { method: 'POST', body: 'x', headers: { accept: 'text/html' } });
    expect(html.status).toBe(403);
    expect(html.headers['content-type']).toContain('text/html');
    expect(html.body).toContain('<code>writes: { api: read-write }</code>');
    expect(api.requests).toHaveLength(0);

    for (const method of ['GET', 'HEAD', 'OPTIONS']) {
      expect((await send(wt.port, host, { method })).status).toBe(200);
    }
    expect(api.requests.map((r) => r.method)).toEqual(['GET', 'HEAD', 'OPTIONS']);
  });

  it('refuses what writes.deny names, matched on the path the client sent, before reaching the remote; the rest passes', async () => {
    const api = await remoteUpstream();
    const wt = await worktree({
      services: `  api:
    remote: https://contoso-api-dev.localhost:\${port:api}/v1
    writes: { policy: read-only, deny: ["* /jobs/next", "GET /queues/*/messages", "!GET /queues/*/messages?peekonly=true"] }`,
      upstreams: { api },
    });
    const host = `api.x.localhost:${wt.port}`;
    const dequeue = await send(wt.port, host, { path: '/queues/orders/messages?numofmessages=1', headers: { accept: 'application/json' } });
    expect(dequeue.status).toBe(403);
    expect(dequeue.headers['x-devproxy-error']).toBe('DEVPROXY_ERR_READ_ONLY');
    const { error } = JSON.parse(dequeue.body) as { error: { code: string; message: string; hint: string } };
    expect(error.code).toBe('DEVPROXY_ERR_READ_ONLY');
    expect(error.message).toContain('`api` is `writes: read-only` and denies "GET /queues/*/messages"');
    expect(error.hint).toContain('writes: { api: read-write }');
    // A HEAD answer has no body: the header alone says why.
    const head = await send(wt.port, host, { method: 'HEAD', path: '/jobs/next' });
    expect(head.status).toBe(403);
    expect(head.headers['x-devproxy-error']).toBe('DEVPROXY_ERR_READ_ONLY');
    expect(api.requests).toHaveLength(0);
    expect(wt.logs).toContain('api.x.localhost: GET refused (writes: read-only, deny "GET /queues/*/messages")');

    for (const path of ['/queues/orders/messages?peekonly=true', '/queues/orders', '/v1/jobs/next']) {
      expect((await send(wt.port, host, { path })).status).toBe(200);
    }
    expect(api.requests.map((r) => r.url)).toEqual(['/v1/queues/orders/messages?peekonly=true', '/v1/queues/orders', '/v1/v1/jobs/next']);
  });

  it('lets the worktree profile file allow writes for that service', async () => {
    const api = await remoteUpstream();
    const wt = await worktree({ services, upstreams: { api }, profile: 'profile: minimal\nwrites: { api: read-write }\n' });
    const res = await send(wt.port, `api.x.localhost:${wt.port}`, { method: 'POST', body: 'created' });
    expect(res.status).toBe(200);
    expect(api.requests.map((r) => r.method)).toEqual(['POST']);
  });
});

describe('CORS for the worktree origins', () => {
  const services = `  ui: { remote: "https://contoso-ui-dev.localhost:\${port:api}" }
  api: { remote: "https://contoso-api-dev.localhost:\${port:api}" }`;

  /** A remote whose own CORS list knows only its cloud UI. */
  function strictCors(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(req.method === 'OPTIONS' ? 403 : 200, {
      'access-control-allow-origin': 'https://contoso-ui-dev.azurewebsites.net',
      vary: 'Accept-Encoding',
      'content-type': 'text/plain',
    });
    res.end('remote answer');
  }

  it('answers a preflight from the worktree UI origin locally, with credentials and the requested method and headers', async () => {
    const api = await remoteUpstream(strictCors);
    const wt = await worktree({ services, upstreams: { api } });
    const origin = `http://ui.x.localhost:${wt.port}`;
    const res = await send(wt.port, `api.x.localhost:${wt.port}`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'content-type, x-requested-with' },
    });
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(origin);
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(res.headers['access-control-allow-methods']).toBe('PATCH');
    expect(res.headers['access-control-allow-headers']).toBe('content-type, x-requested-with');
    expect(res.headers.vary).toContain('Origin');
    expect(api.requests).toHaveLength(0);

    const get = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { origin } });
    expect(get.status).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBe(origin);
    expect(get.headers['access-control-allow-credentials']).toBe('true');
    expect(get.headers.vary).toBe('Accept-Encoding, Origin');
  });

  it('lets the worktree UI read devproxy\'s own refusals (read-only 403)', async () => {
    const api = await remoteUpstream(strictCors);
    const wt = await worktree({ services: services.replace('api: { remote: "https://contoso-api-dev.localhost:${port:api}" }', 'api: { remote: "https://contoso-api-dev.localhost:${port:api}", writes: read-only }'), upstreams: { api } });
    const origin = `http://ui.x.localhost:${wt.port}`;
    const res = await send(wt.port, `api.x.localhost:${wt.port}`, { method: 'POST', body: '{}', headers: { origin, accept: 'application/json' } });
    expect(res.status).toBe(403);
    expect(res.headers['access-control-allow-origin']).toBe(origin);
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    const evil = await send(wt.port, `api.x.localhost:${wt.port}`, { method: 'POST', body: '{}', headers: { origin: 'https://evil.example' } });
    expect(evil.status).toBe(403);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('leaves other origins to the remote: never widened', async () => {
    const api = await remoteUpstream(strictCors);
    const wt = await worktree({ services, upstreams: { api } });
    for (const origin of ['https://evil.example', `http://ui.y.localhost:${wt.port}`, `http://ui.x.localhost:${wt.port + 1}`, `https://ui.x.localhost:${wt.port}`]) {
      const preflight = await send(wt.port, `api.x.localhost:${wt.port}`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
      expect(preflight.status).toBe(403);
      expect(preflight.headers['access-control-allow-origin']).toBe('https://contoso-ui-dev.azurewebsites.net');
      expect(preflight.headers['access-control-allow-credentials']).toBeUndefined();
      const get = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { origin } });
      expect(get.headers['access-control-allow-origin']).toBe('https://contoso-ui-dev.azurewebsites.net');
    }
    expect(api.requests).toHaveLength(8);
  });

  it('passes the remote CORS answers through unchanged with cors: false', async () => {
    const api = await remoteUpstream(strictCors);
    const wt = await worktree({ services: services.replace('api: { remote: "https://contoso-api-dev.localhost:${port:api}" }', 'api: { remote: "https://contoso-api-dev.localhost:${port:api}", cors: false }'), upstreams: { api } });
    const origin = `http://ui.x.localhost:${wt.port}`;
    const res = await send(wt.port, `api.x.localhost:${wt.port}`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
    expect(res.status).toBe(403);
    expect(res.headers['access-control-allow-origin']).toBe('https://contoso-ui-dev.azurewebsites.net');
  });
});

describe('sign-in redirects through an identity host of the worktree', () => {
  it('rewrites every Location of a 302 chain api → login → api to stable hostnames and keeps the session cookie on the stable host', async () => {
    let loginPort = 0;
    let apiPort = 0;
    const api = await remoteUpstream((req, res) => {
      const url = new URL(req.url ?? '/', 'https://contoso-api-dev.localhost');
      if (url.pathname === '/.auth/login/aad/callback') {
        res.writeHead(302, {
          location: `https://contoso-api-dev.localhost:${apiPort}/app/home`,
          'set-cookie': 'AppServiceAuthSession=s3ss10n; Domain=contoso-api-dev.localhost; Path=/; Secure; HttpOnly; SameSite=None',
        });
        res.end();
        return;
      }
      if (req.headers.cookie?.includes('AppServiceAuthSession=s3ss10n')) {
        echoHandler(req, res);
        return;
      }
      // App Service authentication builds the callback from X-Forwarded-Host (forwardProxy: Custom).
      const callback = `https://${String(req.headers['x-forwarded-host'])}/.auth/login/aad/callback`;
      res.writeHead(302, { location: `https://login-dev.localhost:${loginPort}/authorize?redirect_uri=${encodeURIComponent(callback)}` });
      res.end();
    });
    const login = await remoteUpstream((req, res) => {
      res.writeHead(302, {
        location: `https://contoso-api-dev.localhost:${apiPort}/.auth/login/aad/callback?code=c0de`,
        'set-cookie': 'esctx=abc; domain=.login-dev.localhost; path=/; secure; samesite=none',
      });
      res.end();
    });
    apiPort = api.port;
    loginPort = login.port;
    const wt = await worktree({
      services: `  api: { remote: "https://contoso-api-dev.localhost:\${port:api}" }
  login: { remote: "https://login-dev.localhost:\${port:login}" }`,
      upstreams: { api, login },
    });
    const stable = (service: string) => `http://${service}.x.localhost:${wt.port}`;

    const first = await send(wt.port, `api.x.localhost:${wt.port}`, { path: '/app/home' });
    expect(first.status).toBe(302);
    expect(first.headers.location).toBe(`${stable('login')}/authorize?redirect_uri=${encodeURIComponent(`https://api.x.localhost:${wt.port}/.auth/login/aad/callback`)}`);
    expect(api.requests[0]?.headers['x-forwarded-host']).toBe(`api.x.localhost:${wt.port}`);
    expect(api.requests[0]?.headers['x-original-host']).toBe(`api.x.localhost:${wt.port}`);

    const second = await send(wt.port, `login.x.localhost:${wt.port}`, { path: new URL(first.headers.location as string).pathname });
    expect(second.headers.location).toBe(`${stable('api')}/.auth/login/aad/callback?code=c0de`);
    expect(second.headers['set-cookie']).toEqual(['esctx=abc; path=/']);

    const third = await send(wt.port, `api.x.localhost:${wt.port}`, { path: '/.auth/login/aad/callback?code=c0de' });
    expect(third.headers.location).toBe(`${stable('api')}/app/home`);
    expect(third.headers['set-cookie']).toEqual(['AppServiceAuthSession=s3ss10n; Path=/; HttpOnly']);

    const signedIn = await send(wt.port, `api.x.localhost:${wt.port}`, { path: '/app/home', headers: { cookie: 'AppServiceAuthSession=s3ss10n' } });
    expect(signedIn.status).toBe(200);
  });

  it('leaves a Location at a host outside the worktree alone', async () => {
    const api = await remoteUpstream((_req, res) => {
      res.writeHead(302, { location: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize' }).end();
    });
    const wt = await worktree({ services: '  api: { remote: "https://contoso-api-dev.localhost:${port:api}" }', upstreams: { api } });
    const res = await send(wt.port, `api.x.localhost:${wt.port}`);
    expect(res.headers.location).toBe('https://login.microsoftonline.com/common/oauth2/v2.0/authorize');
  });
});

describe('the worktree header', () => {
  it('names the worktree on every remote request, replacing a client-sent one', async () => {
    const api = await remoteUpstream();
    const wt = await worktree({ services: '  api: { remote: "https://contoso-api-dev.localhost:${port:api}" }', upstreams: { api } });
    const res = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { 'x-devproxy-worktree': 'spoofed' } });
    expect(api.requests[0]?.rawHeaders.filter((h) => h.toLowerCase() === 'x-devproxy-worktree')).toHaveLength(1);
    expect(echoed(res).headers['x-devproxy-worktree']).toBe('x');
  });

  it('uses the configured name, and sends none when turned off', async () => {
    const api = await remoteUpstream();
    const named = await worktree({ services: '  api: { remote: "https://contoso-api-dev.localhost:${port:api}" }', upstreams: { api }, top: 'worktreeHeader: X-Team-Worktree\n' });
    const res = await send(named.port, `api.x.localhost:${named.port}`, { headers: { 'x-team-worktree': 'spoofed' } });
    expect(echoed(res).headers['x-team-worktree']).toBe('x');
    expect(echoed(res).headers['x-devproxy-worktree']).toBeUndefined();

    const off = await worktree({ services: '  api: { remote: "https://contoso-api-dev.localhost:${port:api}" }', upstreams: { api }, top: 'worktreeHeader: false\n' });
    const none = await send(off.port, `api.x.localhost:${off.port}`);
    expect(Object.keys(echoed(none).headers).filter((h) => h.includes('worktree'))).toEqual([]);
  });
});

/** A remote over TLS that switches every upgrade to WebSocket, telling `seen` its request headers; answers its port. */
async function upgradingRemote(seen: IncomingMessage['headers'][]): Promise<number> {
  const tls = await remoteTls();
  const server = https.createServer({ cert: tls.certPem, key: tls.keyPem });
  server.on('upgrade', (req: IncomingMessage, socket) => {
    seen.push(req.headers);
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }));
  return (server.address() as AddressInfo).port;
}

/** Asks `api.x.localhost` on `port` for a WebSocket upgrade; answers the status and, when refused, the body. */
function upgrade(port: number, extra: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/socket',
      headers: { host: `api.x.localhost:${port}`, ...extra, connection: 'upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      agent: false,
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('WebSocket upgrades to a remote', () => {
  it('carry the auth and worktree headers too', async () => {
    const seen: IncomingMessage['headers'][] = [];
    const port = await upgradingRemote(seen);
    const wt = await worktree({
      services: `  api:
    remote: https://contoso-api-dev.localhost:${port}
    auth: { headers: { x-functions-key: "\${env:API_FUNCTIONS_KEY}" } }
    writes: read-only`,
      upstreams: {},
      proxy: { env: { API_FUNCTIONS_KEY: SECRET } },
    });
    const { status } = await upgrade(wt.port, { 'x-devproxy-worktree': 'spoofed' });
    expect(status).toBe(101);
    expect(seen[0]?.['x-functions-key']).toBe(SECRET);
    expect(seen[0]?.['x-devproxy-worktree']).toBe('x');
    expect(seen[0]?.['x-original-host']).toBe(`api.x.localhost:${wt.port}`);
    expect(wt.logs.join('\n')).not.toContain(SECRET);
  });

  it('answer a 502 naming the unset variable instead of opening the remote without its key', async () => {
    const upgrades: IncomingMessage['headers'][] = [];
    const port = await upgradingRemote(upgrades);
    const wt = await worktree({
      services: `  api:
    remote: https://contoso-api-dev.localhost:${port}
    auth: { headers: { ocp-apim-subscription-key: "\${env:APIM_KEY}" } }`,
      upstreams: {},
      proxy: { env: {} },
    });
    const answer = await upgrade(wt.port, { accept: 'application/json' });
    expect(answer.status).toBe(502);
    const { error } = JSON.parse(answer.body) as { error: { code: string; message: string } };
    expect(error.code).toBe('DEVPROXY_ERR_ENV_UNSET');
    expect(error.message).toContain('APIM_KEY');
    expect(upgrades).toEqual([]);
  });
});

describe('remote hops over HTTPS and HTTP/2', () => {
  it('answers CORS for the https origin, injects auth, refuses writes and keeps Secure cookies', async () => {
    const api = await remoteUpstream((req, res) => {
      if (req.url === '/login') {
        res.writeHead(302, { location: `https://contoso-api-dev.localhost:${api.port}/home`, 'set-cookie': 's=1; Domain=contoso-api-dev.localhost; Secure; SameSite=None' }).end();
        return;
      }
      echoHandler(req, res);
    });
    const wt = await worktree({
      services: `  ui: { remote: "https://contoso-ui-dev.localhost:\${port:api}" }
  api:
    remote: https://contoso-api-dev.localhost:\${port:api}
    auth: { headers: { x-functions-key: "\${env:API_FUNCTIONS_KEY}" } }
    writes: read-only`,
      upstreams: { api },
      https: true,
      proxy: { env: { API_FUNCTIONS_KEY: SECRET } },
    });
    const origin = `https://ui.x.localhost:${wt.httpsPort}`;
    const session = http2.connect(`https://api.x.localhost:${wt.httpsPort}`, { ca: wt.httpsCaPem, lookup: loopbackLookup });
    cleanups.push(async () => {
      session.destroy();
    });
    const h2 = (headers: http2.OutgoingHttpHeaders, body?: string) =>
      new Promise<{ headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const stream = session.request(headers);
        const chunks: Buffer[] = [];
        let head: http2.IncomingHttpHeaders = {};
        stream.on('response', (h) => (head = h));
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => resolve({ headers: head, body: Buffer.concat(chunks).toString() }));
        stream.on('error', reject);
        stream.end(body);
      });

    const preflight = await h2({ ':method': 'OPTIONS', ':path': '/items', origin, 'access-control-request-method': 'PUT' });
    expect(preflight.headers[':status']).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(origin);
    expect(preflight.headers['access-control-allow-credentials']).toBe('true');

    const get = await h2({ ':method': 'GET', ':path': '/items', origin });
    expect(get.headers[':status']).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBe(origin);
    expect(echoed({ status: 200, headers: {}, body: get.body }).headers['x-functions-key']).toBe(SECRET);
    expect(echoed({ status: 200, headers: {}, body: get.body }).headers['x-forwarded-proto']).toBe('https');

    const put = await h2({ ':method': 'PUT', ':path': '/items/1', origin, accept: 'application/json' }, '{}');
    expect(put.headers[':status']).toBe(403);
    expect(put.headers['access-control-allow-origin']).toBe(origin);

    const login = await h2({ ':method': 'GET', ':path': '/login' });
    expect(login.headers.location).toBe(`https://api.x.localhost:${wt.httpsPort}/home`);
    expect(login.headers['set-cookie']).toEqual(['s=1; Secure; SameSite=None']);
    expect(api.requests.map((r) => r.method)).toEqual(['GET', 'GET']);
  });
});
