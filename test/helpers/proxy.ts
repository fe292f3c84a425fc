import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inProcessMinter } from '../../certs/in-process-minter.js';
import { createCertificateStore } from '../../certs/store.js';
import { startHttpsProxy } from '../../proxy/https-listener.js';
import { createProxyHandler, type ProxyHandlerOptions } from '../../proxy/server.js';
import { startHttpProxy, type HttpProxyServer } from '../../proxy/http-listener.js';
import type { H1Front } from '../../proxy/h1-front.js';
import type { ProxyHandler } from '../../proxy/types.js';
import type { RoutingTable } from '../../router/types.js';

/** A real proxy listening on 127.0.0.1, as a test drives it. */
export interface TestProxy {
  port: number;
  handler: ProxyHandler;
  server: HttpProxyServer;
  /** What the proxy warned or errored about (it never prints). */
  warnings: string[];
}

/**
 * Starts a real proxy for `table` on 127.0.0.1 port 0 and registers its shutdown in `cleanups`
 * (server first, then the upstream pools). httpPort is read per request, so it is filled in
 * once the port is bound.
 */
export async function startTestProxy(table: RoutingTable, cleanups: Array<() => Promise<void> | void>, extra: Partial<ProxyHandlerOptions> = {}): Promise<TestProxy> {
  const warnings: string[] = [];
  const options: ProxyHandlerOptions = {
    getTable: () => table,
    httpPort: 0,
    logger: { info: () => {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
    ...extra,
  };
  const handler = createProxyHandler(options);
  const server = await startHttpProxy({ handler, port: 0, hosts: ['127.0.0.1'] });
  options.httpPort = server.port;
  cleanups.push(async () => {
    await server.close();
    await handler.close();
  });
  return { port: server.port, handler, server, warnings };
}

/** A real HTTPS listener as a test drives it: its port and the devproxy CA its leaves come from. */
export interface TestHttpsProxy {
  port: number;
  caPath: string;
  caPem: string;
}

/**
 * Starts the real HTTPS listener (h2 + HTTP/1.1) for `table` on 127.0.0.1 port 0, with a devproxy
 * CA of its own in a temp folder, and registers its shutdown and the folder's removal in `cleanups`.
 */
export async function startHttpsTestProxy(table: RoutingTable, cleanups: Array<() => Promise<unknown> | unknown>): Promise<TestHttpsProxy> {
  const home = await mkdtemp(join(tmpdir(), 'devproxy-https-test-'));
  cleanups.push(() => rm(home, { recursive: true, force: true }));
  const options: ProxyHandlerOptions = { getTable: () => table, httpPort: 0, httpsPort: 0 };
  const handler = createProxyHandler(options);
  cleanups.push(() => handler.close());
  const certificates = createCertificateStore({ home, minter: inProcessMinter, isKnownName: (name) => table.routes.has(name) });
  const server = await startHttpsProxy({ handler, port: 0, hosts: ['127.0.0.1'], certificates });
  cleanups.push(() => server.close());
  options.httpsPort = server.port;
  return { port: server.port, caPath: certificates.caPath, caPem: await readFile(certificates.caPath, 'utf8') };
}

/** Closes a bare server served by the HTTP/1.1 front (`takeOverConnections`): its idle and open connections, then the server. */
export function closeFrontServer(server: Server, front: H1Front): Promise<void> {
  return new Promise<void>((resolve) => {
    front.closeIdle();
    server.closeAllConnections();
    server.close(() => resolve());
  });
}
