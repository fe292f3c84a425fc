/**
 * A page in headless Chromium calls another service of its worktree while `devproxy use` flips
 * that service local ↔ remote: the real CLI and daemon, a stand-in remote over HTTPS with its own
 * CA and a CORS list that knows only the cloud UI, a local app that speaks no CORS at all, and the
 * devproxy CA trusted through an NSS db (no certificate errors ignored). Every fetch must succeed
 * on both routes, with the response headers a browser SDK reads (etag, x-ms-*, the route).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';
import { ensureTool, nssHomeTrusting } from '../helpers/tools.js';
import { createTestTls, startHttpsUpstream, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';

const CHROMIUM = '/usr/bin/chromium';
/** Fetches made on each route once the flip reached it. */
const FETCHES_PER_PHASE = 5;
/** Longest wait for a flip to reach the page's fetches. */
const FLIP_DEADLINE_MS = 30_000;

/** What the page's `probe()` reports of one cross-origin fetch. */
interface Probe {
  ok: boolean;
  status?: number;
  route?: string | null;
  etag?: string | null;
  requestId?: string | null;
  body?: string;
  error?: string;
  /** Chromium's reasons for the requests of a failed probe (`net::ERR_…`). */
  failedRequests?: string[];
}

/** Attempts of one probe whose requests Chromium aborted because the machine's addresses changed. */
const NETWORK_CHANGED_ATTEMPTS = 3;

/** The UI: `probe()` sends a credentialed PUT with a custom header (so a preflight) to the api service. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>ui</title>
<script>
  window.probe = async (apiOrigin) => {
    try {
      const res = await fetch(apiOrigin + '/items/1', {
        method: 'PUT',
        credentials: 'include',
        headers: { 'content-type': 'application/json', 'x-ms-client-request-id': 'c1' },
        body: '{"name":"one"}',
      });
      return { ok: true, status: res.status, route: res.headers.get('x-devproxy-route'), etag: res.headers.get('etag'),
        requestId: res.headers.get('x-ms-request-id'), body: await res.text() };
    } catch (error) {
      return { ok: false, error: String(error) };
    }
  };
</script>`;

let unavailable: string | undefined;
let home: string;
let browserHome: string;
let repo: TempRepo;
let ui: Upstream;
let localApi: Upstream;
let remoteApi: Upstream;
let env: NodeJS.ProcessEnv;
let httpsPort: number;
let browser: Browser | undefined;
const cli = (args: string[]) => runCli(args, { cwd: repo.main, env, timeoutMs: 60_000 });

/** The local api: no CORS of its own, an OPTIONS it does not know is a 405. */
function localApiHandler(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  req.on('end', () => {
    if (req.method === 'OPTIONS') {
      res.writeHead(405, { allow: 'GET, PUT' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', etag: '"local-1"', 'x-ms-request-id': 'local-req' }).end('api local');
  });
}

/** The DEV api: its CORS list allows only the cloud UI, and it refuses other preflights. */
function remoteApiHandler(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  req.on('end', () => {
    const cors = { 'access-control-allow-origin': 'https://contoso-ui-dev.azurewebsites.net' };
    if (req.method === 'OPTIONS') {
      res.writeHead(403, cors).end();
      return;
    }
    res.writeHead(200, { ...cors, 'content-type': 'text/plain', etag: '"remote-1"', 'x-ms-request-id': 'remote-req' }).end('api remote');
  });
}

beforeAll(async () => {
  unavailable = await ensureTool('ensure-chromium.sh', 'chromium/certutil');
  if (unavailable !== undefined) return;
  home = await mkdtemp(join(tmpdir(), 'devproxy-cors-flip-'));
  ui = await startHttpUpstream((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE));
  localApi = await startHttpUpstream(localApiHandler);
  const tls = await createTestTls(['contoso-api-dev.localhost']);
  remoteApi = await startHttpsUpstream(tls, remoteApiHandler);
  repo = await createTempRepo({
    'dev-ca.pem': tls.caPem,
    'devproxy.yaml': JSON.stringify({
      name: 'contoso',
      ca: 'dev-ca.pem',
      services: {
        ui: { local: { port: ui.port } },
        api: { local: { port: localApi.port }, remote: `https://contoso-api-dev.localhost:${remoteApi.port}` },
      },
      profiles: { minimal: ['ui'], standard: ['ui', 'api'] },
      default: 'minimal',
    }),
  });
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
  expect((await cli(['init'])).code).toBe(0);
  const started = await cli(['proxy', 'start', '--json']);
  expect(started.code, started.stderr).toBe(0);
  httpsPort = (JSON.parse(started.stdout) as { httpsPort: number }).httpsPort;

  browserHome = await nssHomeTrusting(join(home, 'certs', 'ca.pem'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    env: { ...process.env, HOME: browserHome },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    timeout: 60_000,
  });
}, 900_000);

afterAll(async () => {
  await browser?.close();
  if (repo !== undefined) {
    await cli(['proxy', 'stop', '--all']);
    await repo.cleanup();
  }
  await Promise.all([ui?.close(), localApi?.close(), remoteApi?.close()]);
  for (const dir of [home, browserHome]) if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe('a page calling a sibling service across `devproxy use` flips (Chromium)', () => {
  it('succeeds on the remote route, the local route and back, with zero CORS failures', async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);
    const page: Page = await (browser as Browser).newPage();
    const consoleErrors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    let response = null;
    for (let attempt = 1; response === null; attempt++) {
      response = await page.goto(`https://ui.contoso.localhost:${httpsPort}/`, { timeout: 30_000 }).catch((error: unknown) => {
        if (attempt < NETWORK_CHANGED_ATTEMPTS && String(error).includes('net::ERR_NETWORK_CHANGED')) return null;
        throw error;
      });
    }
    expect(response?.status()).toBe(200);
    const api = `https://api.contoso.localhost:${httpsPort}`;
    const probes: Probe[] = [];
    const failedRequests: string[] = [];
    page.on('requestfailed', (request) => failedRequests.push(`${request.failure()?.errorText ?? 'unknown'} ${request.method()} ${request.url()}`));
    const probe = async (): Promise<Probe> => {
      for (let attempt = 1; ; attempt++) {
        const failedBefore = failedRequests.length;
        // A string: the expression runs in the page, whose DOM types this Node project does not load.
        const result = await page.evaluate<Probe>(`window.probe(${JSON.stringify(api)})`);
        if (result.ok) {
          probes.push(result);
          return result;
        }
        await waitFor(() => (failedRequests.length > failedBefore ? true : undefined), 5_000, 'Chromium to report the failed request').catch(() => undefined);
        const failed = failedRequests.slice(failedBefore);
        // Chromium aborts requests in flight when an address of the machine comes or goes (a Docker
        // network created by another program): a fact about the machine, not about the route.
        const networkChanged = failed.length > 0 && failed.every((reason) => reason.startsWith('net::ERR_NETWORK_CHANGED'));
        if (networkChanged && attempt < NETWORK_CHANGED_ATTEMPTS) continue;
        probes.push({ ...result, failedRequests: failed });
        return result;
      }
    };
    /** Probes until the route answers from `route` (bounded), then a fixed number more. */
    const phase = async (route: 'local' | 'remote'): Promise<void> => {
      const deadline = Date.now() + FLIP_DEADLINE_MS;
      while ((await probe()).route !== route) {
        if (Date.now() > deadline) throw new Error(`the page never reached the ${route} route: ${JSON.stringify(probes.at(-1))}`);
      }
      for (let i = 0; i < FETCHES_PER_PHASE; i++) await probe();
    };

    await phase('remote');
    const toLocal = await cli(['use', 'standard']);
    expect(toLocal.code, toLocal.stderr).toBe(0);
    await phase('local');
    const toRemote = await cli(['use', 'minimal']);
    expect(toRemote.code, toRemote.stderr).toBe(0);
    await phase('remote');

    const failures = probes.filter((p) => !p.ok || p.status !== 200);
    expect(failures).toEqual([]);
    expect(consoleErrors.filter((text) => /CORS/i.test(text))).toEqual([]);
    // Every answer was readable by the page, with the headers a browser SDK needs.
    for (const p of probes) {
      expect([p.body, p.etag, p.requestId]).toEqual(
        p.route === 'local' ? ['api local', '"local-1"', 'local-req'] : ['api remote', '"remote-1"', 'remote-req'],
      );
    }
    expect(probes.filter((p) => p.route === 'local').length).toBeGreaterThanOrEqual(FETCHES_PER_PHASE);
    expect(probes.filter((p) => p.route === 'remote').length).toBeGreaterThanOrEqual(2 * FETCHES_PER_PHASE);
    expect(localApi.requests.some((r) => r.method === 'PUT')).toBe(true);
    expect(remoteApi.requests.some((r) => r.method === 'PUT')).toBe(true);
  }, 240_000);
});
