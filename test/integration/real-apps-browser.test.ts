/**
 * The end to end, as a new user tries it: a real Vite dev server (`ui`) and a real
 * Express API (`api`) as process services of a temp git repository. `devproxy new` runs `setup:`
 * (copies the git-ignored .env files, links node_modules) before anything starts, both services
 * become healthy, headless Chromium loads the UI over HTTPS/HTTP2 through the proxy with the CA
 * trusted by `devproxy trust` in a fresh NSS database (no ignoreHTTPSErrors), an edit is applied
 * by HMR without a full reload, and the page's API calls keep succeeding across `use` flips
 * between the local Express and an HTTPS stand-in of the DEV remote.
 */
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, type TempRepo } from '../helpers/git-repo.js';
import { ensureTool } from '../helpers/tools.js';
import { createTestTls, startHttpsUpstream, type Upstream } from '../helpers/upstreams.js';

const CHROMIUM = '/usr/bin/chromium';
/** This project's node_modules: vite 8 and express 5 are its devDependencies. */
const NODE_MODULES = join(import.meta.dirname, '..', '..', 'node_modules');
/** How many times the API is flipped local → remote → local. */
const FLIPS = 3;

interface ApiStats {
  ok: number;
  failed: number;
  from: Record<string, number>;
  errors: string[];
}

const FILES: Record<string, string> = {
  '.gitignore': 'node_modules\n.env\nui/.env.local\n',
  'ui/index.html': `<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title><script>window.loadId = Math.random();</script></head>
<body><p id="message"></p><p id="greeting"></p><script type="module" src="/src/main.js"></script></body></html>
`,
  'ui/src/message.js': "export const text = 'first version';\n",
  'ui/src/main.js': `import { text } from './message.js';
const render = (value) => { document.getElementById('message').textContent = value; };
render(text);
document.getElementById('greeting').textContent = import.meta.env.VITE_GREETING;
// The API's stable HTTPS URL comes from devproxy (env: { url: VITE_API_URL } in devproxy.yaml).
const api = import.meta.env.VITE_API_HTTPS_URL;
const stats = (window.apiStats = { ok: 0, failed: 0, from: {}, errors: [] });
async function poll() {
  try {
    const response = await fetch(api + '/api/items', { cache: 'no-store' });
    if (!response.ok) throw new Error('HTTP ' + response.status + ' ' + (await response.text()).slice(0, 200));
    const body = await response.json();
    stats.ok++;
    stats.from[body.from] = (stats.from[body.from] || 0) + 1;
  } catch (error) {
    stats.failed++;
    stats.errors.push(String(error));
  }
  setTimeout(poll, 40);
}
poll();
if (import.meta.hot) import.meta.hot.accept('./message.js', (next) => render(next.text));
`,
  'api/server.js': `const express = require('express');
const app = express();
app.get('/healthz', (req, res) => res.send('ok'));
app.get('/api/items', (req, res) => {
  if (req.headers.origin) res.set('access-control-allow-origin', req.headers.origin).set('vary', 'origin');
  res.json({ from: 'local', secret: process.env.API_SECRET });
});
app.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('api listening on ' + process.env.PORT));
`,
};

let unavailable: string | undefined;
let home: string;
let browserHome: string;
let repo: TempRepo;
let remote: Upstream;
let env: NodeJS.ProcessEnv;
let httpsPort: number;
let browser: Browser | undefined;
const cli = (args: string[], cwd = repo.main, extraEnv: NodeJS.ProcessEnv = {}) => runCli(args, { cwd, env: { ...env, ...extraEnv }, timeoutMs: 180_000 });

beforeAll(async () => {
  unavailable = await ensureTool('ensure-chromium.sh', 'chromium/certutil');
  if (unavailable !== undefined) return;
  home = await mkdtemp(join(tmpdir(), 'devproxy-apps-home-'));
  browserHome = await mkdtemp(join(tmpdir(), 'devproxy-apps-browser-'));
  const tls = await createTestTls(['api-dev.localhost']);
  remote = await startHttpsUpstream(tls, (req, res) => {
    if (req.url?.startsWith('/api/items')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ from: 'remote' }));
    } else {
      res.writeHead(404).end();
    }
  });
  repo = await createTempRepo({
    ...FILES,
    'remote-ca.pem': tls.caPem,
    'devproxy.yaml': `name: shop
setup:
  copy: [.env, ui/.env.local]
  run:
    - ln -s "$DEVPROXY_MAIN/node_modules" node_modules
services:
  ui:
    local: { command: "npx vite --host 127.0.0.1 --port $PORT --strictPort", cwd: ui }
    health: { path: /, timeout: 60s }
  api:
    local: { command: "node --env-file=../.env server.js", cwd: api }
    remote: { url: "https://api-dev.localhost:${remote.port}", ca: remote-ca.pem }
    health: /healthz
    env: { url: VITE_API_URL }
profiles:
  minimal: [ui]
  standard: [ui, api]
default: minimal
`,
  });
  // The main checkout as a developer has it: dependencies installed, git-ignored settings present.
  await symlink(NODE_MODULES, join(repo.main, 'node_modules'));
  await writeFile(join(repo.main, '.env'), 'API_SECRET=from-the-main-env\n');
  await writeFile(join(repo.main, 'ui', '.env.local'), 'VITE_GREETING=hello from .env.local\n');
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
  const started = await cli(['proxy', 'start', '--json']);
  expect(started.code, started.stderr).toBe(0);
  httpsPort = (JSON.parse(started.stdout) as { httpsPort: number }).httpsPort;
}, 660_000);

afterAll(async () => {
  await browser?.close();
  if (repo) {
    await cli(['rm', 'shop-feature', '--force']);
    await cli(['proxy', 'stop', '--all']);
  }
  await remote?.close();
  await repo?.cleanup();
  if (home) await rm(home, { recursive: true, force: true });
  if (browserHome) await rm(browserHome, { recursive: true, force: true });
}, 120_000);

const stats = (page: Page): Promise<ApiStats> => page.evaluate<ApiStats>('window.apiStats');

describe('a real Vite UI and Express API through devproxy in headless Chromium', () => {
  it('sets up, starts, serves over h2 with a trusted CA, applies HMR without a reload, and keeps API calls succeeding across flips', async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);

    // A fresh Linux profile: no ~/.pki/nssdb until `devproxy trust` creates the one Chromium will open.
    const trusted = await cli(['trust', '--no-system'], repo.main, { HOME: browserHome });
    expect(trusted.code, trusted.stdout + trusted.stderr).toBe(0);
    const nssdb = join(browserHome, '.pki', 'nssdb');
    expect(trusted.stdout).toContain(`✓ NSS ${nssdb}: added as "devproxy" (trusted for TLS servers); created the database`);

    const created = await cli(['new', 'feature/shop-feature', '--profile', 'standard']);
    expect(created.code, created.stdout + created.stderr).toBe(0);
    const worktree = join(`${repo.main}.worktrees`, 'shop-feature');
    expect(created.stdout).toContain('setup: copied .env');
    expect(created.stdout).toContain('setup: copied ui/.env.local');
    expect(created.stdout).toMatch(/setup 1\/1: done in \d+\.\d s/);
    expect(created.stdout).toMatch(/ui\s+healthy \(\d+\.\d s\)/);
    expect(created.stdout).toMatch(/api\s+healthy \(\d+\.\d s\)/);
    // The set-up ran before any service: the log of ui starts after the setup finished.
    expect(created.stdout.indexOf('setup 1/1: done')).toBeLessThan(created.stdout.indexOf('starting…'));

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      env: { ...process.env, HOME: browserHome },
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
      timeout: 60_000,
    });
    const page = await browser.newPage();
    let loads = 0;
    page.on('load', () => loads++);
    const response = await page.goto(`https://ui.shop-feature.localhost:${httpsPort}/`, { timeout: 60_000 });
    expect(response?.status()).toBe(200);
    expect(await page.evaluate<string>("performance.getEntriesByType('navigation')[0].nextHopProtocol")).toBe('h2');
    await expect.poll(() => page.textContent('#message'), { timeout: 30_000 }).toBe('first version');
    expect(await page.textContent('#greeting')).toBe('hello from .env.local');
    await expect.poll(async () => (await stats(page)).from.local ?? 0, { timeout: 30_000 }).toBeGreaterThan(3);
    const loadId = await page.evaluate<number>('window.loadId');

    // HMR: the module is replaced in place; the page (and its counters) survive.
    await writeFile(join(worktree, 'ui', 'src', 'message.js'), "export const text = 'edited in the worktree';\n");
    await expect.poll(() => page.textContent('#message'), { timeout: 30_000 }).toBe('edited in the worktree');
    expect(await page.evaluate<number>('window.loadId')).toBe(loadId);
    expect(loads).toBe(1);

    for (let i = 0; i < FLIPS; i++) {
      const before = await stats(page);
      const toRemote = await cli(['use', 'minimal'], worktree);
      expect(toRemote.code, toRemote.stdout + toRemote.stderr).toBe(0);
      await expect.poll(async () => (await stats(page)).from.remote ?? 0, { timeout: 30_000 }).toBeGreaterThan((before.from.remote ?? 0) + 3);
      const middle = await stats(page);
      const toLocal = await cli(['use', 'standard'], worktree);
      expect(toLocal.code, toLocal.stdout + toLocal.stderr).toBe(0);
      await expect.poll(async () => (await stats(page)).from.local ?? 0, { timeout: 60_000 }).toBeGreaterThan((middle.from.local ?? 0) + 3);
    }
    const final = await stats(page);
    expect(final.errors).toEqual([]);
    expect(final.failed).toBe(0);
    expect(final.ok).toBeGreaterThan(20);
    expect(loads).toBe(1);
    // The local API read the copied .env.
    const direct = await page.evaluate<{ secret: string }>(`fetch('https://api.shop-feature.localhost:${httpsPort}/api/items').then((r) => r.json())`);
    expect(direct.secret).toBe('from-the-main-env');
    expect(await readFile(join(worktree, '.env'), 'utf8')).toBe('API_SECRET=from-the-main-env\n');
    console.log(`real apps: ${final.ok} API calls (${final.from.local ?? 0} local, ${final.from.remote ?? 0} remote) across ${FLIPS * 2} flips, ${final.failed} failed`);
  }, 420_000);
});
