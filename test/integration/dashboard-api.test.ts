/**
 * The dashboard's profile routes answer each refusal with the status a caller acts on: these are
 * the statuses the admin API answered before they came from the error catalogue, pinned.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminRouter } from '../../daemon/admin-router.js';
import { registerDashboardRoutes } from '../../daemon/dashboard-api.js';
import { DashboardFeed } from '../../daemon/dashboard-feed.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { RequestLog } from '../../proxy/request-log.js';
import type { WorktreeInput } from '../../router/types.js';

const CONFIG = `name: contoso
services:
  api:
    local: { command: "node server.js", port: 3000 }
    remote: https://api-dev.localhost
profiles:
  remote-all: []
  api-local: [api]
default: remote-all
`;

let dir: string;
let server: Server;
let base: string;
const inputs = new Map<string, WorktreeInput>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'devproxy-dashboard-api-'));
  const good = join(dir, 'good');
  const broken = join(dir, 'broken');
  const { config, errors } = validateConfig(CONFIG, join(good, 'devproxy.yaml'));
  expect(errors).toEqual([]);
  inputs.set(good, { path: good, repo: good, isMain: true, config, diagnostics: [] });
  inputs.set(broken, { path: broken, repo: broken, isMain: true, diagnostics: [] });
  const requestLog = new RequestLog(8);
  const feed = new DashboardFeed({ report: () => { throw new Error('no status here'); }, probe: async () => new Map(), requestLog });
  const router = new AdminRouter(() => true);
  registerDashboardRoutes(router, {
    feed,
    requestLog,
    worktree: (path) => {
      const input = inputs.get(path);
      return input === undefined ? undefined : { input, slug: input === inputs.get(good) ? 'good' : 'broken' };
    },
    running: () => [],
  });
  server = createServer((req, res) => void router.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function post(path: string, body: unknown): Promise<{ status: number; code: string | undefined }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { error?: { code?: string } };
  return { status: res.status, code: json.error?.code };
}

describe('the dashboard profile routes', () => {
  it.each([
    ['a worktree devproxy does not route', { path: '/nowhere' }, 404, 'DEVPROXY_ERR_UNKNOWN_WORKTREE'],
    ['no path at all', {}, 404, 'DEVPROXY_ERR_UNKNOWN_WORKTREE'],
    ['a worktree without a valid devproxy.yaml', { worktree: 'broken' }, 409, 'DEVPROXY_ERR_CONFIG_INVALID'],
    ['a service mode that is not local or remote', { worktree: 'good', services: { api: 'cloud' } }, 400, 'DEVPROXY_ERR_USAGE'],
    ['a profile the config does not name', { worktree: 'good', profile: 'nope' }, 400, 'DEVPROXY_ERR_UNKNOWN_PROFILE'],
    ['a service the config does not name', { worktree: 'good', services: { nope: 'local' } }, 400, 'DEVPROXY_ERR_UNKNOWN_SERVICE'],
  ] as const)('answer %s with %i', async (_what, given, status, code) => {
    const body: Record<string, unknown> = { ...given };
    if ('worktree' in body) body.path = join(dir, body.worktree as string);
    for (const route of ['/api/profile/plan', '/api/profile']) {
      expect(await post(route, body), route).toEqual({ status, code });
    }
  });

  it('plans a change with 200, and refuses to write it once the file moved on with 409', async () => {
    const path = join(dir, 'good');
    const plan = await fetch(`${base}/api/profile/plan`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ path, profile: 'api-local' }) });
    expect(plan.status).toBe(200);
    expect(((await plan.json()) as { revision: string }).revision).toBe('none');
    expect(await post('/api/profile', { path, profile: 'api-local', revision: 'stale' })).toEqual({ status: 409, code: 'DEVPROXY_ERR_PROFILE_CHANGED' });
  });
});
