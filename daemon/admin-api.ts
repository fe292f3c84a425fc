import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import { Readable } from 'node:stream';
import type { LocalRuntime } from '../runtime/local-runtime.js';
import type { StatusReport } from '../workspace/status.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard.js';
import { registerDashboardRoutes, type DashboardApiOptions } from './dashboard-api.js';
import { httpStatusOf } from '../errors.js';

export interface AdminApiOptions {
  /** Bearer token every API call must carry (from daemon.json, mode 0600). */
  token: string;
  status(probe: boolean): Promise<StatusReport>;
  reload(): Promise<void>;
  /** Asks the daemon to shut down after the reply is sent. */
  stop(): void;
  runtime: Pick<LocalRuntime, 'restart' | 'removeWorktree' | 'logs' | 'followLogs' | 'status'>;
  /** Worktrees the daemon routes; runtime calls must name one of them. */
  worktreePaths(): string[];
  /** The live feed, request log and profile changes of the dashboard. */
  dashboard: DashboardApiOptions;
}

interface ServiceRequest {
  path?: string;
  service?: string;
}

/**
 * Routes served without the token, by their routed (normalised) path: the data-free dashboard
 * page only. Everything else — every API endpoint, added later or not, and every path that
 * matches no route — needs the token, so no spelling of a path can reach an endpoint without it.
 */
const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/']);

/**
 * The daemon's admin API, on its own loopback port. Every request but the dashboard page needs
 * the per-user token; requests from a browser page of another origin and Host headers other than
 * the loopback address (DNS rebinding) are refused before the token is even looked at.
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
    // The route fastify matched, not the raw target: `/%61pi/status`, `//api/status` or the
    // absolute form `http://127.0.0.1:<port>/api/status` all reach the `/api/status` handler.
    const routed = request.routeOptions.url;
    if (routed !== undefined && PUBLIC_ROUTES.has(routed) && (request.method === 'GET' || request.method === 'HEAD')) return;
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return reply.code(401).send({ error: { code: 'DEVPROXY_ERR_ADMIN_UNAUTHORIZED', message: 'missing or wrong admin token' } });
    }
  });

  app.get('/', async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-security-policy', DASHBOARD_CSP)
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .send(DASHBOARD_HTML));
  app.get('/api/status', async (request) => options.status((request.query as { probe?: string }).probe !== '0'));
  app.post('/api/reload', async () => {
    await options.reload();
    return options.status(false);
  });
  const knownPath = (path: string | undefined, reply: FastifyReply): path is string => {
    if (path && options.worktreePaths().includes(path)) return true;
    void reply.code(404).send({ error: { code: 'DEVPROXY_ERR_UNKNOWN_WORKTREE', message: `devproxy routes no worktree at ${path ?? '(none given)'}` } });
    return false;
  };
  app.post('/api/restart', async (request, reply) => {
    const { path, service } = (request.body ?? {}) as ServiceRequest;
    if (!knownPath(path, reply)) return reply;
    await options.runtime.restart(path, service ?? '');
    return { service, status: options.runtime.status(path).find((s) => s.service === service) ?? null };
  });
  app.post('/api/remove-worktree', async (request, reply) => {
    const { path } = (request.body ?? {}) as ServiceRequest;
    if (!knownPath(path, reply)) return reply;
    await options.runtime.removeWorktree(path);
    return { removed: path };
  });
  app.get('/api/logs', async (request, reply) => {
    const query = request.query as ServiceRequest & { lines?: string; follow?: string };
    if (!knownPath(query.path, reply)) return reply;
    const lines = query.lines ? Number(query.lines) : 100;
    if (query.follow !== '1') return reply.type('text/plain; charset=utf-8').send(await options.runtime.logs(query.path, query.service ?? '', { lines }));
    const abort = new AbortController();
    request.raw.once('close', () => abort.abort());
    return reply.type('text/plain; charset=utf-8').send(Readable.from(options.runtime.followLogs(query.path, query.service ?? '', { lines, signal: abort.signal })));
  });
  app.setErrorHandler((error: Error & { code?: string; hint?: string; statusCode?: number }, _request, reply) => {
    // A caller's mistake (unknown service, bad body) is 4xx with its code, never a 500.
    void reply.code(error.statusCode && error.statusCode < 500 ? error.statusCode : httpStatusOf(error)).send({ error: { code: error.code ?? 'DEVPROXY_ERR_INTERNAL', message: error.message, hint: error.hint ?? null } });
  });
  registerDashboardRoutes(app, options.dashboard);
  app.post('/api/stop', async (_request, reply) => {
    reply.raw.once('finish', () => options.stop());
    return { stopping: true };
  });

  await app.listen({ host: '127.0.0.1', port });
  const address = app.server.address();
  boundPort = typeof address === 'object' && address ? address.port : port;
  return {
    port: boundPort,
    close: () => {
      // Open event streams would hold the listener forever; their clients reconnect to the next daemon.
      options.dashboard.feed.close();
      return app.close();
    },
  };
}
