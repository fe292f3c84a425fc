import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProxyHandlerOptions } from '../../proxy/server.js';
import type { RoutingTable, Target } from '../../router/types.js';
import { waitFor } from '../helpers/git-repo.js';
import { local, remote, route, tableOf } from '../helpers/routes.js';
import { createTestTls, send, startHttpUpstream, startHttpsUpstream, startTcpUpstream, type TestTls } from '../helpers/upstreams.js';
import { createExpiredTls, createSelfSignedTls } from './bad-certs.js';
import { within } from './raw-client.js';
import { tally } from './tally.js';
import { startTestProxy } from '../helpers/proxy.js';

/**
 * Upstreams that misbehave the ways real dev servers do (crash mid-response, reset, hang,
 * speak something else) and remotes with certificates that must not verify. The proxy must
 * answer a clean error page or a clean truncation, never hang, and serve the next request.
 */
const faults = tally('upstream-faults');
const tlsFaults = tally('remote-tls');

const HOST = 'api.feature-x.localhost';
const HEALTHY = 'ui.feature-x.localhost';
const REMOTE_HOST = 'api-dev.test-remote.localhost';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function proxy(table: RoutingTable, extra: Partial<ProxyHandlerOptions> = {}): Promise<number> {
  return (await startTestProxy(table, cleanups, extra)).port;
}

async function healthyUpstream(): Promise<Target> {
  const up = await startHttpUpstream((_req, res) => res.end('healthy'));
  cleanups.push(() => up.close());
  return local(up.port);
}

/** GET through the proxy, resolving with how the response ended; bounded so a hang fails. */
function getOutcome(port: number, host: string): Promise<{ status: number; body: string; how: 'complete' | 'aborted' | 'error'; error?: string }> {
  return within(
    new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host, accept: 'application/json' }, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), how: res.complete ? 'complete' : 'aborted' }));
        res.on('aborted', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), how: 'aborted' }));
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), how: 'aborted', error: e.code ?? e.message }));
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: 0, body: '', how: 'error', error: e.code ?? e.message }));
      req.end();
    }),
    10_000,
    `GET ${host}`,
  );
}

describe('upstream faults', () => {
  it('an upstream that dies mid-response (Content-Length) gives the client a truncated, aborted response, and the next request is served', async () => {
    await faults.check(async () => {
      const up = await startTcpUpstream((socket) => {
        socket.once('data', () => {
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' + 'x'.repeat(100));
          setTimeout(() => socket.destroy(), 50);
        });
      }, cleanups);
      const port = await proxy(tableOf(route(HOST, local(up.port)), route(HEALTHY, await healthyUpstream())));
      const outcome = await getOutcome(port, HOST);
      expect(outcome.status).toBe(200);
      expect(outcome.how).not.toBe('complete');
      expect(outcome.body.length).toBeLessThan(1000);
      expect((await send(port, HEALTHY)).body).toBe('healthy');
    });
  });

  it('an upstream that dies mid-response (chunked) gives a truncated response, never a well-formed end', async () => {
    await faults.check(async () => {
      const up = await startTcpUpstream((socket) => {
        socket.once('data', () => {
          socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
          setTimeout(() => socket.destroy(), 50);
        });
      }, cleanups);
      const port = await proxy(tableOf(route(HOST, local(up.port)), route(HEALTHY, await healthyUpstream())));
      const outcome = await getOutcome(port, HOST);
      expect(outcome.status).toBe(200);
      expect(outcome.how).not.toBe('complete');
      expect((await send(port, HEALTHY)).body).toBe('healthy');
    });
  });

  it('an upstream that resets the connection before answering gets a 502 page naming the service', async () => {
    await faults.check(async () => {
      const up = await startTcpUpstream((socket) => socket.once('data', () => socket.resetAndDestroy()), cleanups);
      const port = await proxy(tableOf(route(HOST, local(up.port)), route(HEALTHY, await healthyUpstream())));
      const res = await send(port, HOST, { headers: { accept: 'application/json' } });
      expect(res.status).toBe(502);
      expect(res.body).toContain('api');
      expect(res.body).toContain('feature-x');
      expect((await send(port, HEALTHY)).body).toBe('healthy');
    });
  });

  it('an upstream that resets at accept (before any byte) gets a 502 page', async () => {
    await faults.check(async () => {
      const up = await startTcpUpstream((socket) => socket.resetAndDestroy(), cleanups);
      const port = await proxy(tableOf(route(HOST, local(up.port))));
      const res = await send(port, HOST, { headers: { accept: 'application/json' } });
      expect(res.status).toBe(502);
      expect(JSON.parse(res.body).error?.code ?? res.body).toMatch(/DEVPROXY_ERR_UPSTREAM/);
    });
  });

  it('nothing listening on the local port gets a 502 "is it running?" page', async () => {
    await faults.check(async () => {
      const up = await startTcpUpstream(() => {}, cleanups);
      const deadPort = up.port;
      await new Promise<void>((resolve) => up.server.close(() => resolve()));
      const port = await proxy(tableOf(route(HOST, local(deadPort))));
      const res = await send(port, HOST, { headers: { accept: 'application/json' } });
      expect(res.status).toBe(502);
      expect(res.body).toContain('DEVPROXY_ERR_UPSTREAM_REFUSED');
    });
  });

  it('an upstream that stalls before headers gets a 504 page after the headers timeout, and its socket is freed', async () => {
    await faults.check(async () => {
      // Reads the request (a paused socket would never see the proxy's FIN), never answers.
      const up = await startTcpUpstream((socket) => socket.resume(), cleanups);
      const port = await proxy(tableOf(route(HOST, local(up.port)), route(HEALTHY, await healthyUpstream())), {
        // It bounds the healthy route's request too: long enough for a busy machine.
        upstreamTimeouts: { headersTimeoutMs: 1_000 },
      });
      const res = await within(send(port, HOST, { headers: { accept: 'application/json' } }), 10_000, 'stalled request');
      expect(res.status).toBe(504);
      expect(res.body).toContain('DEVPROXY_ERR_UPSTREAM_TIMEOUT');
      await waitFor(() => (up.open.size === 0 ? true : undefined), 5_000, 'the stalled upstream socket to be closed by the proxy');
      expect((await send(port, HEALTHY)).body).toBe('healthy');
    });
  });

  it('an upstream that stalls mid-body is cut after the body timeout and its socket is freed', async () => {
    await faults.check(async () => {
      const up = await startTcpUpstream((socket) => {
        socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial'));
      }, cleanups);
      const port = await proxy(tableOf(route(HOST, local(up.port))), { upstreamTimeouts: { bodyTimeoutMs: 300 } });
      const outcome = await getOutcome(port, HOST);
      expect(outcome.status).toBe(200);
      expect(outcome.how).not.toBe('complete');
      await waitFor(() => (up.open.size === 0 ? true : undefined), 5_000, 'the stalled upstream socket to be closed');
    });
  });

  it('an upstream that answers garbage gets a 502 page', async () => {
    await faults.check(async () => {
      const up = await startTcpUpstream((socket) => socket.once('data', () => socket.end('SSH-2.0-OpenSSH_9.6\r\nthis is not http\r\n\r\n')), cleanups);
      const port = await proxy(tableOf(route(HOST, local(up.port)), route(HEALTHY, await healthyUpstream())));
      const res = await send(port, HOST, { headers: { accept: 'application/json' } });
      expect(res.status).toBe(502);
      expect((await send(port, HEALTHY)).body).toBe('healthy');
    });
  });

  it('an upstream that answers an invalid status line gets a 502 page', async () => {
    await faults.check(async () => {
      const up = await startTcpUpstream((socket) => socket.once('data', () => socket.end('HTTP/1.1 abc Broken\r\nContent-Length: 0\r\n\r\n')), cleanups);
      const port = await proxy(tableOf(route(HOST, local(up.port))));
      const res = await send(port, HOST, { headers: { accept: 'application/json' } });
      expect(res.status).toBe(502);
    });
  });

  it('an upstream that frames an answer two ways (Content-Length and chunked) gets a 502 naming it, and the next request is answered on a fresh connection', async () => {
    await faults.check(async () => {
      let connections = 0;
      const up = await startTcpUpstream((socket) => {
        const first = connections++ === 0;
        socket.on('data', () =>
          socket.write(first ? 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged' : 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext'),
        );
      }, cleanups);
      const port = await proxy(tableOf(route(HOST, local(up.port))));
      const refused = await send(port, HOST, { headers: { accept: 'application/json' } });
      expect(refused.status).toBe(502);
      expect(refused.body).toContain('HPE_UNEXPECTED_CONTENT_LENGTH');
      expect((await send(port, HOST)).body).toBe('next');
      expect(connections).toBe(2);
    });
  });

  it('an upstream that closes every connection at accept gets a 502 or 504, never a hang', async () => {
    await faults.check(async () => {
      const up = await startTcpUpstream((socket) => socket.destroy(), cleanups);
      const port = await proxy(tableOf(route(HOST, local(up.port))), { upstreamTimeouts: { connectTimeoutMs: 300, headersTimeoutMs: 300 } });
      const res = await within(send(port, HOST, { headers: { accept: 'application/json' } }), 10_000, 'request to a closing upstream');
      expect([502, 504]).toContain(res.status);
    });
  });
});

describe('remote TLS faults', () => {
  const caDir = async (pem: string): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'devproxy-rel-tls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'ca.pem'), pem);
    return join(dir, 'ca.pem');
  };

  async function remoteCase(serverTls: TestTls, opts: { trustCa?: string; insecure?: boolean }) {
    const up = await startHttpsUpstream(serverTls, (_req, res) => res.end('remote ok'));
    cleanups.push(() => up.close());
    const target = remote({
      origin: up.origin,
      hostname: REMOTE_HOST,
      authority: REMOTE_HOST,
      caFiles: opts.trustCa ? [await caDir(opts.trustCa)] : [],
      insecure: opts.insecure ?? false,
    });
    const port = await proxy(tableOf(route(HOST, target)));
    return send(port, HOST, { headers: { accept: 'application/json' } });
  }

  it('a certificate for another name: 502 naming ERR_TLS_CERT_ALTNAME_INVALID', async () => {
    await tlsFaults.check(async () => {
      const other = await createTestTls(['someone-else.test-remote.localhost']);
      const res = await remoteCase(other, { trustCa: other.caPem });
      expect(res.status).toBe(502);
      expect(res.body).toContain('DEVPROXY_ERR_UPSTREAM_TLS');
      expect(res.body).toContain('ERR_TLS_CERT_ALTNAME_INVALID');
    });
  });

  it('an expired certificate from a trusted CA: 502 naming CERT_HAS_EXPIRED', async () => {
    await tlsFaults.check(async () => {
      const expired = await createExpiredTls(REMOTE_HOST);
      const res = await remoteCase(expired, { trustCa: expired.caPem });
      expect(res.status).toBe(502);
      expect(res.body).toContain('CERT_HAS_EXPIRED');
    });
  });

  it('a self-signed certificate: 502 naming DEPTH_ZERO_SELF_SIGNED_CERT', async () => {
    await tlsFaults.check(async () => {
      const selfSigned = await createSelfSignedTls(REMOTE_HOST);
      const res = await remoteCase(selfSigned, {});
      expect(res.status).toBe(502);
      expect(res.body).toContain('DEPTH_ZERO_SELF_SIGNED_CERT');
    });
  });

  it('a certificate from an unknown CA: 502 naming the verification error', async () => {
    await tlsFaults.check(async () => {
      const unknown = await createTestTls([REMOTE_HOST]);
      const res = await remoteCase(unknown, {});
      expect(res.status).toBe(502);
      expect(res.body).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN/);
    });
  });

  it('insecure: true is the only way past a bad certificate (self-signed and expired)', async () => {
    await tlsFaults.check(async () => {
      const selfSigned = await createSelfSignedTls(REMOTE_HOST);
      expect((await remoteCase(selfSigned, { insecure: true })).body).toBe('remote ok');
      const expired = await createExpiredTls(REMOTE_HOST);
      expect((await remoteCase(expired, { insecure: true })).body).toBe('remote ok');
    });
  });
});
