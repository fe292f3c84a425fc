import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_UPSTREAM_TIMEOUTS, UpstreamPools, type RemoteTarget } from '../../proxy/upstream-pools.js';
import { remote } from '../helpers/routes.js';
import { startRemote, remoteWorktreeFor, type RemoteWorktree, type RemoteWorktreeOptions } from '../helpers/remote-worktree.js';
import { createTestTls, send, startHttpsUpstream } from '../helpers/upstreams.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const worktree = (options: RemoteWorktreeOptions): Promise<RemoteWorktree> => remoteWorktreeFor(cleanups, options);

/** A remote that answers like Azure front ends: HTTP/1.1 keep-alive by default, no `Connection` header. */
function noConnectionHeader(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  req.on('end', () => {
    res.removeHeader('connection');
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5', etag: '"v1"' });
    res.end(req.method === 'HEAD' ? undefined : 'hello');
  });
}

describe('HTTPS remote connections', () => {
  it.each([
    ['a remote that sends Connection: keep-alive', undefined],
    ['a remote that sends no Connection header (keep-alive by default)', noConnectionHeader],
  ] as const)('keeps the pooled TLS connection across HEAD then GET (%s)', async (_name, handler) => {
    const api = await startRemote(handler);
    cleanups.push(() => api.close());
    const wt = await worktree({ services: `  api: { remote: "https://contoso-api-dev.localhost:\${port:api}" }`, upstreams: { api } });
    const host = `api.x.localhost:${wt.port}`;
    for (const method of ['GET', 'HEAD', 'GET', 'HEAD', 'HEAD', 'GET']) {
      const res = await send(wt.port, host, { method });
      expect(res.status).toBe(200);
    }
    expect(api.requests.map((r) => r.method)).toEqual(['GET', 'HEAD', 'GET', 'HEAD', 'HEAD', 'GET']);
    expect(api.connections).toBe(1);
  });

  it('sends no SNI to an IP-literal remote and verifies it against its IP SAN', async () => {
    const tls = await createTestTls(['127.0.0.1']);
    const api = await startHttpsUpstream(tls);
    cleanups.push(() => api.close());
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }): void => {
      warnings.push(`${warning.code ?? warning.name}: ${warning.message}`);
    };
    process.on('warning', onWarning);
    cleanups.push(async () => {
      process.off('warning', onWarning);
    });
    const wt = await worktree({
      services: `  api: { remote: { url: "https://127.0.0.1:\${port:api}", ca: "\${dir}/ip-ca.pem" } }`,
      upstreams: { api },
      files: { 'ip-ca.pem': tls.caPem },
    });
    const res = await send(wt.port, `api.x.localhost:${wt.port}`);
    expect(res.status).toBe(200);
    expect(api.requests).toHaveLength(1);
    expect(api.requests[0]?.servername).toBeUndefined();
    expect(warnings.filter((w) => w.includes('DEP0123'))).toEqual([]);
  });

  it('builds one secure context per distinct CA set, shared by every remote and connection using it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'devproxy-ctx-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const team = join(dir, 'team.pem');
    const other = join(dir, 'other.pem');
    await writeFile(team, (await createTestTls(['a.localhost'])).caPem);
    await writeFile(other, (await createTestTls(['b.localhost'])).caPem);
    const pools = new UpstreamPools(DEFAULT_UPSTREAM_TIMEOUTS);
    cleanups.push(() => pools.close());
    const target = (origin: string, hostname: string, caFiles: string[], insecure = false): RemoteTarget =>
      remote({ origin, hostname, caFiles, insecure }) as RemoteTarget;
    const api = pools.tlsFor(target('https://127.0.0.1:1001', 'api-dev.localhost', [team]));
    const blob = pools.tlsFor(target('https://127.0.0.1:1002', 'blob-dev.localhost', [team]));
    const ip = pools.tlsFor(target('https://127.0.0.1:1003', '127.0.0.1', [team]));
    const elsewhere = pools.tlsFor(target('https://127.0.0.1:1004', 'api-dev.localhost', [other]));
    const insecure = pools.tlsFor(target('https://127.0.0.1:1005', 'api-dev.localhost', [], true));
    expect(blob.secureContext).toBe(api.secureContext);
    expect(ip.secureContext).toBe(api.secureContext);
    expect(elsewhere.secureContext).not.toBe(api.secureContext);
    expect(insecure.secureContext).not.toBe(api.secureContext);
    expect([api.servername, blob.servername, ip.servername]).toEqual(['api-dev.localhost', 'blob-dev.localhost', undefined]);
    expect([api.rejectUnauthorized, insecure.rejectUnauthorized]).toEqual([true, false]);
  });
});
