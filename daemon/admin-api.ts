import Fastify, { type FastifyInstance } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import type { StatusReport } from './status.js';
import { DASHBOARD_HTML } from './dashboard.js';

export interface AdminApiOptions {
  /** Bearer token every API call must carry (from daemon.json, mode 0600). */
  token: string;
  status(probe: boolean): Promise<StatusReport>;
  reload(): Promise<void>;
  /** Asks the daemon to shut down after the reply is sent. */
  stop(): void;
}

/**
 * The daemon's admin API, on its own loopback port. Every `/api/` call needs the per-user token;
 * requests from a browser page of another origin and Host headers other than the loopback
 * address (DNS rebinding) are refused before the token is even looked at.
 */
export async function startAdminApi(options: AdminApiOptions, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const app: FastifyInstance = Fastify({ logger: false });
  const expected = Buffer.from(`Bearer ${options.token}`);
  let boundPort = 0;

  app.addHook('onRequest', async (request, reply) => {
    const host = request.headers.host ?? '';
    if (host !== `127.0.0.1:${boundPort}` && host !== `localhost:${boundPort}`) {
      return reply.code(421).send({ error: { code: 'DEVPROXY_ERR_ADMIN_UNAUTHORIZED', message: 'the admin API answers only on its loopback address' } });
    }
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== `http://${host}`) {
      return reply.code(403).send({ error: { code: 'DEVPROXY_ERR_ADMIN_UNAUTHORIZED', message: 'cross-origin requests to the admin API are refused' } });
    }
    if (!request.url.startsWith('/api/')) return;
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return reply.code(401).send({ error: { code: 'DEVPROXY_ERR_ADMIN_UNAUTHORIZED', message: 'missing or wrong admin token' } });
    }
  });

  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(DASHBOARD_HTML));
  app.get('/api/status', async (request) => options.status((request.query as { probe?: string }).probe !== '0'));
  app.post('/api/reload', async () => {
    await options.reload();
    return options.status(false);
  });
  app.post('/api/stop', async (_request, reply) => {
    reply.raw.once('finish', () => options.stop());
    return { stopping: true };
  });

  await app.listen({ host: '127.0.0.1', port });
  const address = app.server.address();
  boundPort = typeof address === 'object' && address ? address.port : port;
  return { port: boundPort, close: () => app.close() };
}
