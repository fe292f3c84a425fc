import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startRemote, startRemoteWorktree, type RemoteWorktree, type RemoteWorktreeOptions } from '../helpers/remote-worktree.js';
import { echoHandler, send, type Upstream } from '../helpers/upstreams.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A remote scaling from zero: answers 503 to its first `sleepy` requests, then echoes. */
function coldStart(sleepy: number): (req: IncomingMessage, res: ServerResponse) => void {
  let seen = 0;
  return (req, res) => {
    seen++;
    if (seen <= sleepy) {
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end(`cold start ${seen}`);
      return;
    }
    echoHandler(req, res);
  };
}

async function remoteUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Upstream> {
  const up = await startRemote(handler);
  cleanups.push(() => up.close());
  return up;
}

async function worktree(api: Upstream, wake = '', extra: Partial<RemoteWorktreeOptions> = {}): Promise<RemoteWorktree> {
  const wt = await startRemoteWorktree({
    services: `  api:\n    remote: https://contoso-api-dev.localhost:\${port:api}\n${wake}`,
    upstreams: { api },
    ...extra,
  });
  cleanups.push(() => wt.close());
  return wt;
}

describe('a remote waking from zero', () => {
  it('retries an API GET through three 503s and returns the 200', async () => {
    const api = await remoteUpstream(coldStart(3));
    const wt = await worktree(api);
    const res = await send(wt.port, `api.x.localhost:${wt.port}`, { path: '/items', headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ method: 'GET', url: '/items' });
    expect(api.requests.map((r) => r.method)).toEqual(['GET', 'GET', 'GET', 'GET']);
    expect(wt.logs.filter((l) => l.includes('answered 503; attempt'))).toHaveLength(3);
  });

  it('never retries a POST: it gets the remote 503 as is', async () => {
    const api = await remoteUpstream(coldStart(3));
    const wt = await worktree(api);
    const res = await send(wt.port, `api.x.localhost:${wt.port}`, { method: 'POST', body: '{"order":1}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(503);
    expect(res.body).toBe('cold start 1');
    expect(api.requests).toHaveLength(1);
  });

  it('gives a browser navigation the waking page that reloads itself', async () => {
    const api = await remoteUpstream(coldStart(1));
    const wt = await worktree(api);
    const page = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { accept: 'text/html,application/xhtml+xml' } });
    expect(page.status).toBe(503);
    expect(page.headers['retry-after']).toBe('3');
    expect(page.headers['x-devproxy-route']).toBe('remote');
    expect(page.body).toContain('Waking api…');
    expect(page.body).toContain('location.reload()');
    expect(page.body).toContain('<meta http-equiv="refresh" content="3">');
    expect(page.body).toContain('60000'); // the default wake timeout bounds the reloads
    expect(api.requests).toHaveLength(1);
    const reload = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { accept: 'text/html' } });
    expect(reload.status).toBe(200);
  });

  it('retries a GET whose response headers time out while the remote wakes', async () => {
    let seen = 0;
    const api = await remoteUpstream((req, res) => {
      seen++;
      if (seen === 1) return; // the first request hangs, as a scaling ingress does
      echoHandler(req, res);
    });
    // The timeout also bounds the retry, on a new TLS connection: long enough for a busy machine.
    const wt = await worktree(api, '', { proxy: { upstreamTimeouts: { headersTimeoutMs: 1_000 } } });
    const res = await send(wt.port, `api.x.localhost:${wt.port}`);
    expect(res.status).toBe(200);
    expect(api.requests).toHaveLength(2);
  });

  it('stops within the wake timeout and bounded attempts, then relays the last 503', async () => {
    const api = await remoteUpstream(coldStart(1_000));
    const wt = await worktree(api, '    wake: { timeout: 1s }');
    const res = await send(wt.port, `api.x.localhost:${wt.port}`);
    expect(res.status).toBe(503);
    // 250 + 500 ms of backoff fit in 1 s (unless the machine is very slow), the next 1 s does not.
    expect(api.requests.length).toBeGreaterThanOrEqual(2);
    expect(api.requests.length).toBeLessThanOrEqual(3);
    expect(res.body).toBe(`cold start ${api.requests.length}`);
  });

  it('passes 503s straight through with wake: false', async () => {
    const api = await remoteUpstream(coldStart(3));
    const wt = await worktree(api, '    wake: false');
    const api503 = await send(wt.port, `api.x.localhost:${wt.port}`);
    const page = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { accept: 'text/html' } });
    expect([api503.status, page.status]).toEqual([503, 503]);
    expect(page.body).toBe('cold start 2');
    expect(api.requests).toHaveLength(2);
  });
});
