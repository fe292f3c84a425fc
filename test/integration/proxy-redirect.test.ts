import { afterEach, describe, expect, it } from 'vitest';
import { createProxyHandler } from '../../proxy/server.js';
import { startHttpProxy, type HttpProxyServer } from '../../proxy/http-listener.js';
import type { ProxyHandler } from '../../proxy/types.js';
import { local, route, tableOf } from '../helpers/routes.js';
import { send, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';

let upstream: Upstream;
let handler: ProxyHandler;
let server: HttpProxyServer;

afterEach(async () => {
  await server?.close();
  await handler?.close();
  await upstream?.close();
});

async function start(redirectToHttps: boolean): Promise<number> {
  upstream = await startHttpUpstream();
  handler = createProxyHandler({ getTable: () => tableOf(route('ui.feature-x.localhost', local(upstream.port))), httpPort: 0, httpsPort: 7443, redirectToHttps });
  server = await startHttpProxy({ handler, port: 0, hosts: ['127.0.0.1'] });
  return server.port;
}

describe('plain HTTP → HTTPS redirect (proxy start --redirect-https)', () => {
  it('answers a routed request with a 308 to the same URL on the HTTPS port, keeping method and path', async () => {
    const port = await start(true);
    const response = await send(port, 'ui.feature-x.localhost', { method: 'POST', path: '/form?x=1', body: 'a=1' });
    expect(response.status).toBe(308);
    expect(response.headers.location).toBe('https://ui.feature-x.localhost:7443/form?x=1');
    expect(upstream.requests).toEqual([]);
  });

  it('still answers unknown and foreign hosts with their own pages, and forwards when off', async () => {
    const port = await start(true);
    expect((await send(port, 'nope.feature-x.localhost')).status).toBe(404);
    expect((await send(port, 'evil.com')).status).toBe(421);
    await server.close();
    await handler.close();
    await upstream.close();
    const plain = await start(false);
    expect((await send(plain, 'ui.feature-x.localhost')).status).toBe(200);
  });
});
