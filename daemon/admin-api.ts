import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { LocalRuntime } from '../runtime/local-runtime.js';
import type { StatusReport } from '../workspace/status.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard.js';
import { registerDashboardRoutes, type DashboardApiOptions } from './dashboard-api.js';
import { AdminRouter, writeJson, type AdminReply } from './admin-router.js';
import { adminProof, isProofNonce, PROOF_PATH } from './admin-proof.js';

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
 * page, and the proof that this daemon holds the token (which reveals nothing of it). Everything
 * else — every API endpoint, added later or not, and every path that matches no route — needs
 * the token, so no spelling of a path can reach an endpoint without it.
 */
const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/', PROOF_PATH]);

/**
 * The daemon's admin API, on its own loopback port. Every request but the dashboard page needs
 * the per-user token; requests from a browser page of another origin and Host headers other than
 * the loopback address (DNS rebinding) are refused before the token is even looked at.
 */
export async function startAdminApi(options: AdminApiOptions, port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const expected = Buffer.from(`Bearer ${options.token}`);
  let boundPort = 0;

  const refuse = (res: ServerResponse, status: number, code: string, message: string): false => {
    writeJson(res, status, { error: { code, message } });
    return false;
  };
  const app = new AdminRouter((request: IncomingMessage, res: ServerResponse, routed: string | undefined) => {
    const host = request.headers.host ?? '';
    if (host !== `127.0.0.1:${boundPort}` && host !== `localhost:${boundPort}`) {
      return refuse(res, 421, 'DEVPROXY_ERR_ADMIN_UNAUTHORIZED', 'the admin API answers only on its loopback address');
    }
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== `http://${host}`) {
      return refuse(res, 403, 'DEVPROXY_ERR_ADMIN_UNAUTHORIZED', 'cross-origin requests to the admin API are refused');
    }
    // The route the router matched, not the raw target: `/%61pi/status` or the absolute form
    // `http://127.0.0.1:<port>/api/status` reach the `/api/status` handler, `//api/status` none.
    if (routed !== undefined && PUBLIC_ROUTES.has(routed) && (request.method === 'GET' || request.method === 'HEAD')) return true;
    const given = Buffer.from(request.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return refuse(res, 401, 'DEVPROXY_ERR_ADMIN_UNAUTHORIZED', 'missing or wrong admin token');
    }
    return true;
  });

  app.get('/', (_request, reply) => {
    reply.send(
      200,
      {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': DASHBOARD_CSP,
        'referrer-policy': 'no-referrer',
        'x-content-type-options': 'nosniff',
      },
      DASHBOARD_HTML,
    );
  });
  // The page asks before it sends the token: only a daemon that holds it, on the page's port, can answer.
  app.get(PROOF_PATH, (request, reply) => {
    const nonce = request.query('nonce');
    if (!isProofNonce(nonce)) {
      reply.json(400, { error: { code: 'DEVPROXY_ERR_USAGE', message: 'the proof needs one nonce of 64 lower-case hex digits', hint: null } });
      return;
    }
    return { proof: adminProof(options.token, nonce, boundPort) };
  });
  app.get('/api/status', (request) => options.status(request.query('probe') !== '0'));
  app.post('/api/reload', async () => {
    await options.reload();
    return options.status(false);
  });
  const knownPath = (path: string | undefined, reply: AdminReply): path is string => {
    if (path && options.worktreePaths().includes(path)) return true;
    reply.json(404, { error: { code: 'DEVPROXY_ERR_UNKNOWN_WORKTREE', message: `devproxy routes no worktree at ${path ?? '(none given)'}` } });
    return false;
  };
  app.post('/api/restart', async (request, reply) => {
    const { path, service } = (request.body ?? {}) as ServiceRequest;
    if (!knownPath(path, reply)) return;
    await options.runtime.restart(path, service ?? '');
    return { service, status: options.runtime.status(path).find((s) => s.service === service) ?? null };
  });
  app.post('/api/remove-worktree', async (request, reply) => {
    const { path } = (request.body ?? {}) as ServiceRequest;
    if (!knownPath(path, reply)) return;
    await options.runtime.removeWorktree(path);
    return { removed: path };
  });
  app.get('/api/logs', async (request, reply) => {
    const path = request.query('path');
    if (!knownPath(path, reply)) return;
    const service = request.query('service') ?? '';
    const linesGiven = request.query('lines');
    const lines = linesGiven ? Number(linesGiven) : 100;
    if (request.query('follow') !== '1') {
      reply.send(200, { 'content-type': 'text/plain; charset=utf-8' }, await options.runtime.logs(path, service, { lines }));
      return;
    }
    const abort = new AbortController();
    request.raw.once('close', () => abort.abort());
    reply.stream('text/plain; charset=utf-8', options.runtime.followLogs(path, service, { lines, signal: abort.signal }));
  });
  registerDashboardRoutes(app, options.dashboard);
  app.post('/api/stop', (_request, reply) => {
    reply.onSent(() => options.stop());
    return { stopping: true };
  });

  const server = createServer((request, res) => void app.handle(request, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  boundPort = typeof address === 'object' && address ? address.port : port;
  return {
    port: boundPort,
    close: () => {
      // Open event streams would hold the listener forever; their clients reconnect to the next daemon.
      options.dashboard.feed.close();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}
