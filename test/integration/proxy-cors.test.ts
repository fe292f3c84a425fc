import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startRemote, remoteWorktreeFor, type RemoteWorktree, type RemoteWorktreeOptions } from '../helpers/remote-worktree.js';
import { echoHandler, send, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function upstream(start: Promise<Upstream>): Promise<Upstream> {
  const up = await start;
  cleanups.push(() => up.close());
  return up;
}

const worktree = (options: RemoteWorktreeOptions): Promise<RemoteWorktree> => remoteWorktreeFor(cleanups, options);

/** A local app with CORS of its own (like Vite's default or an Express `cors()` list): it allows only its own dev origin. */
function ownCors(req: IncomingMessage, res: ServerResponse): void {
  const headers = { 'access-control-allow-origin': 'http://localhost:5173', vary: 'Origin', 'content-type': 'text/plain' };
  if (req.method === 'OPTIONS') res.writeHead(204, { ...headers, 'access-control-allow-methods': 'GET' }).end();
  else res.writeHead(200, headers).end('app answer');
}

/** A remote Blob endpoint stand-in: Azure-style headers and a CORS list that knows only the cloud UI. */
function blobLike(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  res.writeHead(200, {
    'access-control-allow-origin': 'https://contoso-ui-dev.azurewebsites.net',
    'access-control-expose-headers': 'x-ms-request-id',
    etag: '"0x8DC"',
    'x-ms-request-id': 'req-1',
    'x-ms-version': '2025-01-05',
    'content-type': 'application/octet-stream',
  });
  res.end('blob');
}

const SERVICES = `  ui: { local: { port: \${port:ui} } }
  api: { local: { port: \${port:api} }, remote: "https://contoso-api-dev.localhost:\${port:remote}" }
  blob: { remote: "https://contoso-ui-dev.localhost:\${port:blob}" }
  legacy: { local: { port: \${port:legacy} }, cors: false }`;

describe('CORS for the worktree origins on local routes', () => {
  async function setup(apiHandler = echoHandler): Promise<{ wt: RemoteWorktree; api: Upstream; origin: string }> {
    const ui = await upstream(startHttpUpstream());
    const api = await upstream(startHttpUpstream(apiHandler));
    const legacy = await upstream(startHttpUpstream());
    const remote = await upstream(startRemote());
    const blob = await upstream(startRemote(blobLike));
    const wt = await worktree({ services: SERVICES, upstreams: { ui, api, legacy, remote, blob }, locals: ['ui', 'api', 'legacy'] });
    return { wt, api, origin: `http://ui.x.localhost:${wt.port}` };
  }

  it('answers the preflight of a local app that does not speak CORS, after asking it, and adds CORS to its answers', async () => {
    const { wt, api, origin } = await setup();
    const host = `api.x.localhost:${wt.port}`;
    const preflight = await send(wt.port, host, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type, x-ms-blob-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe(origin);
    expect(preflight.headers['access-control-allow-credentials']).toBe('true');
    expect(preflight.headers['access-control-allow-methods']).toBe('PUT');
    expect(preflight.headers['access-control-allow-headers']).toBe('content-type, x-ms-blob-type');
    expect(preflight.headers['x-devproxy-route']).toBe('local');
    expect(preflight.body).toBe('');
    // The app was asked first: it might have answered CORS itself.
    expect(api.requests.map((r) => r.method)).toEqual(['OPTIONS']);

    const get = await send(wt.port, host, { headers: { origin } });
    expect(get.status).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBe(origin);
    expect(get.headers['access-control-allow-credentials']).toBe('true');
    expect(get.headers.vary).toBe('Origin');
    expect(get.headers['access-control-expose-headers']).toBe('x-upstream, date, x-devproxy-route');
  });

  it('leaves the answer of a local app that answered CORS itself unchanged', async () => {
    const { wt, origin } = await setup(ownCors);
    const host = `api.x.localhost:${wt.port}`;
    const preflight = await send(wt.port, host, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'PUT' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(preflight.headers['access-control-allow-methods']).toBe('GET');
    expect(preflight.headers['access-control-allow-credentials']).toBeUndefined();
    const get = await send(wt.port, host, { headers: { origin } });
    expect(get.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(get.headers['access-control-expose-headers']).toBeUndefined();
    expect(get.body).toBe('app answer');
  });

  it('never widens other origins, and adds nothing for a `cors: false` service', async () => {
    const { wt, api, origin } = await setup();
    for (const foreign of ['https://evil.example', `http://ui.y.localhost:${wt.port}`, `http://ui.x.localhost:${wt.port + 1}`]) {
      const preflight = await send(wt.port, `api.x.localhost:${wt.port}`, { method: 'OPTIONS', headers: { origin: foreign, 'access-control-request-method': 'PUT' } });
      expect(preflight.status).toBe(200);
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
      const get = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { origin: foreign } });
      expect(get.headers['access-control-allow-origin']).toBeUndefined();
      expect(get.headers['access-control-expose-headers']).toBeUndefined();
    }
    expect(api.requests).toHaveLength(6);
    const legacy = await send(wt.port, `legacy.x.localhost:${wt.port}`, { headers: { origin } });
    expect(legacy.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('lets the worktree UI read devproxy\'s own error pages on a local route', async () => {
    const { wt, api, origin } = await setup();
    await api.close();
    const res = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { origin, accept: 'application/json' } });
    expect(res.status).toBe(502);
    expect(res.headers['access-control-allow-origin']).toBe(origin);
    expect(res.headers['access-control-expose-headers']).toContain('x-devproxy-route');
  });
});

describe('Access-Control-Expose-Headers on remote routes', () => {
  it('exposes x-devproxy-route and the remote\'s own headers (etag, x-ms-*) to the worktree origin only', async () => {
    const ui = await upstream(startHttpUpstream());
    const api = await upstream(startHttpUpstream());
    const legacy = await upstream(startHttpUpstream());
    const remote = await upstream(startRemote());
    const blob = await upstream(startRemote(blobLike));
    const wt = await worktree({ services: SERVICES, upstreams: { ui, api, legacy, remote, blob }, locals: ['ui', 'api', 'legacy'] });
    const origin = `http://ui.x.localhost:${wt.port}`;
    const res = await send(wt.port, `blob.x.localhost:${wt.port}`, { headers: { origin } });
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe(origin);
    expect(res.headers['access-control-expose-headers']?.split(', ')).toEqual(['x-ms-request-id', 'etag', 'x-ms-version', 'date', 'x-devproxy-route']);
    const foreign = await send(wt.port, `blob.x.localhost:${wt.port}`, { headers: { origin: 'https://evil.example' } });
    expect(foreign.headers['access-control-allow-origin']).toBe('https://contoso-ui-dev.azurewebsites.net');
    expect(foreign.headers['access-control-expose-headers']).toBe('x-ms-request-id');
  });
});
