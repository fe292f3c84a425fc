import { createProxyHandler, startHttpProxy, type HttpProxyServer, type ProxyHandlerOptions } from '../../proxy/server.js';
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
