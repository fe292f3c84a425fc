import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';
import { ensureTool } from '../helpers/tools.js';
import { send, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';

/**
 * The dashboard as a user meets it: the real daemon and CLI as subprocesses, a real git
 * repository with worktrees, real upstreams, and Debian's Chromium driving the page.
 */
const CHROMIUM = '/usr/bin/chromium';
/** Where the screenshot is kept (git-ignored). */
const OUTPUT = join(import.meta.dirname, '..', 'output', 'dashboard');
/** The bound: a request shows up in the list within 1 s. */
const REQUEST_VISIBLE_MS = 1_000;
/** A folder name that is HTML: the page must show it as text. */
const HOSTILE_FOLDER = 'x<img src=x onerror=alert(1)>';
/** A local process devproxy runs (restart and logs apply to it): says where it listens. */
const WORKER = `require('node:http').createServer((req, res) => res.end('worker')).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('worker listening on ' + process.env.PORT));\n`;

let unavailable: string | undefined;
let home: string;
let repo: TempRepo;
let feature: string;
let env: NodeJS.ProcessEnv;
let httpPort: number;
let url: string;
const upstreams: Upstream[] = [];
let browser: Browser | undefined;

const cli = (args: string[]) => runCli(args, { cwd: repo.main, env });

async function startDaemon(): Promise<number> {
  const started = await cli(['proxy', 'start', '--no-https', '--json']);
  expect(started.code, started.stderr).toBe(0);
  return (JSON.parse(started.stdout) as { httpPort: number }).httpPort;
}

beforeAll(async () => {
  unavailable = await ensureTool('ensure-chromium.sh', 'chromium');
  home = await mkdtemp(join(tmpdir(), 'devproxy-dashboard-home-'));
  for (const name of ['ui local', 'api local', 'ui remote', 'api remote']) upstreams.push(await startHttpUpstream((_req, res) => res.end(name)));
  const [uiLocal, apiLocal, uiRemote, apiRemote] = upstreams as [Upstream, Upstream, Upstream, Upstream];
  repo = await createTempRepo(
    {
      'devproxy.yaml': `name: shop
services:
  ui:
    local: { port: ${uiLocal.port} }
    remote: http://127.0.0.1:${uiRemote.port}
    memory: 256MB
  api:
    local: { port: ${apiLocal.port} }
    remote: http://127.0.0.1:${apiRemote.port}
    memory: 6GB
  worker:
    local: { command: "node worker.cjs" }
    remote: http://127.0.0.1:${uiRemote.port}
    memory: 128MB
profiles:
  minimal: [ui]
  standard: [ui, api, worker]
default: minimal
`,
      'worker.cjs': WORKER,
    },
    'shop',
  );
  feature = repo.addWorktree('feature/dash-board');
  repo.addWorktree('feature/hostile', HOSTILE_FOLDER);
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0' };
  delete env.DISPLAY;
  delete env.WAYLAND_DISPLAY;
  expect((await cli(['init'])).code).toBe(0);
  httpPort = await startDaemon();
  const printed = await cli(['dashboard', '--no-open']);
  expect(printed.code, printed.stderr).toBe(0);
  url = printed.stdout.trim();
}, 660_000);

afterAll(async () => {
  await browser?.close();
  await cli(['proxy', 'stop', '--all']);
  await Promise.all(upstreams.map((u) => u.close()));
  await repo.cleanup();
  await rm(home, { recursive: true, force: true });
});

async function openDashboard(): Promise<Page> {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 60_000,
  });
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const failures: string[] = [];
  page.on('pageerror', (error) => failures.push(String(error)));
  // Console network errors are expected while the daemon restarts; script errors and dialogs are not.
  page.on('dialog', (dialog) => {
    failures.push(`dialog opened: ${dialog.message()}`);
    void dialog.dismiss();
  });
  await page.goto(url, { timeout: 30_000 });
  (page as Page & { failures?: string[] }).failures = failures;
  return page;
}

describe('devproxy dashboard in Chromium', () => {
  it('prints a loopback URL with the token in the fragment, and the admin API refuses what the page must not do', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=[0-9a-f]{48}$/);
    const base = url.slice(0, url.indexOf('#'));
    const token = url.slice(url.indexOf('=') + 1);
    for (const [method, path] of [['GET', 'api/requests'], ['GET', 'api/requests/1'], ['GET', 'api/events'], ['POST', 'api/profile/plan'], ['POST', 'api/profile'], ['PUT', 'api/requests/recording']] as const) {
      expect((await fetch(`${base}${path}`, { method })).status, `${method} /${path} without the token`).toBe(401);
    }
    // The token only ever travels in a header: not in the query string the page never uses.
    expect((await fetch(`${base}api/events?token=${token}`)).status).toBe(401);
    const foreign = await fetch(`${base}api/events`, { headers: { authorization: `Bearer ${token}`, origin: 'http://evil.example' } });
    expect(foreign.status).toBe(403);
    const page = await fetch(base);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    // Works offline: no script, stylesheet or font from anywhere (the only link is the empty data: icon).
    const html = await page.text();
    expect(html).not.toMatch(/<script[^>]*\ssrc=/);
    expect(html).not.toMatch(/<link(?![^>]*href="data:)[^>]*href=/);
    expect(html).not.toMatch(/@import|url\(|@font-face|https:\/\//);
  });

  it('shows every worktree, a request within 1 s, a profile switch from the page, and a broken profile with its line', async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);
    const page = await openDashboard();
    for (const name of ['shop', 'dash-board', 'hostile']) await page.locator(`[data-worktree="${name}"]`).waitFor({ timeout: 15_000 });
    // The folder name is shown as text, never parsed as HTML.
    expect(await page.locator('[data-worktree="hostile"] .location').textContent()).toContain(HOSTILE_FOLDER);
    expect(await page.locator('img').count()).toBe(0);
    await page.locator('#conn', { hasText: 'live' }).waitFor({ timeout: 5_000 });

    const before = await send(httpPort, 'api.dash-board.localhost', { path: '/hello-dashboard' });
    expect(before.body).toBe('api remote');
    const row = page.locator('#request-rows tr[data-path="/hello-dashboard"]');
    await row.waitFor({ timeout: REQUEST_VISIBLE_MS });
    expect(await row.getAttribute('data-route')).toBe('remote');
    await row.press('Enter');
    await page.locator('#detail h3', { hasText: 'request headers' }).waitFor({ timeout: 5_000 });
    expect(await page.locator('#detail').textContent()).toContain('api.dash-board.localhost');

    // Switch the worktree's profile from the page: the plan first, then apply.
    await page.locator('[data-worktree="dash-board"] select.profile').selectOption('standard');
    await page.locator('#plan .route-change', { hasText: 'api: remote → local' }).waitFor({ timeout: 5_000 });
    await page.locator('#apply').press('Enter');
    await page.locator('[data-worktree="dash-board"] tr[data-service="api"][data-state="local"]').waitFor({ timeout: 10_000 });
    expect(await readFile(join(feature, '.devproxy', 'profile.yaml'), 'utf8')).toMatch(/^profile: standard$/m);
    const after = await send(httpPort, 'api.dash-board.localhost', { path: '/after-switch' });
    expect(after.body).toBe('api local');
    expect(after.headers['x-devproxy-route']).toBe('local');
    await page.locator('#request-rows tr[data-path="/after-switch"][data-route="local"]').waitFor({ timeout: 5_000 });
    // Filters: by text, then by worktree; cleared, every row is back.
    await page.locator('#f-text').fill('after-sw');
    await expect.poll(() => page.locator('#request-rows tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-path'))), { timeout: 10_000 }).toEqual(['/after-switch']);
    await page.locator('#f-text').fill('');
    await page.locator('#f-worktree').selectOption('shop');
    await expect.poll(() => page.locator('#request-rows tr').count(), { timeout: 10_000 }).toBe(0);
    await page.locator('#f-worktree').selectOption('');
    await expect.poll(() => page.locator('#request-rows tr').count(), { timeout: 10_000 }).toBe(2);

    // The process devproxy started for the worktree: its log followed on the page, then a restart.
    const worker = page.locator('[data-worktree="dash-board"] tr[data-service="worker"]');
    await page.locator('[data-worktree="dash-board"] tr[data-service="worker"][data-state="local"]').waitFor({ timeout: 20_000 });
    await worker.getByRole('button', { name: 'logs' }).click();
    await page.locator('#logs', { hasText: 'worker listening on' }).waitFor({ timeout: 10_000 });
    await worker.getByRole('button', { name: 'restart' }).click();
    await page.locator('#logs-title', { hasText: 'worker in dash-board: healthy' }).waitFor({ timeout: 20_000 });

    // A broken profile file: its file and line on the page, the last good routes still serve.
    await writeFile(join(feature, '.devproxy', 'profile.yaml'), 'profile: standard\nservices:\n  api: sideways\n');
    // writeFile truncates first: the watcher may see the empty file before the broken one.
    const problem = page.locator('[data-worktree="dash-board"] .problem', { hasText: 'profile.yaml:3:' });
    await problem.waitFor({ timeout: 10_000 });
    const text = (await problem.textContent()) ?? '';
    expect(text).toContain(`${join(feature, '.devproxy', 'profile.yaml')}:3`);
    expect(text).toContain('fix:');
    expect((await send(httpPort, 'api.dash-board.localhost', { path: '/still-served' })).body).toBe('api local');

    await page.locator('#request-rows tr[data-path="/still-served"]').waitFor({ timeout: 5_000 });
    await mkdir(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, 'dashboard.png'), fullPage: true });

    // A daemon restart: the page reconnects by itself (same admin port and token, proved first).
    expect((await cli(['proxy', 'stop'])).code).toBe(0);
    await page.locator('#conn', { hasText: 'reconnecting' }).waitFor({ timeout: 10_000 });
    httpPort = await startDaemon();
    await page.locator('#conn', { hasText: 'live' }).waitFor({ timeout: 15_000 });
    await page.locator('[data-worktree="dash-board"]').waitFor({ timeout: 5_000 });
    await send(httpPort, 'ui.shop.localhost', { path: '/after-restart' });
    await page.locator('#request-rows tr[data-path="/after-restart"]').waitFor({ timeout: REQUEST_VISIBLE_MS });
    expect((page as Page & { failures?: string[] }).failures).toEqual([]);
  }, 180_000);

  it('devproxy requests lists the log, and --follow --json prints new requests as they happen', async () => {
    await send(httpPort, 'ui.dash-board.localhost', { path: '/listed', headers: { authorization: 'Bearer hunter2', cookie: 'sid=secret' } });
    const listed = await cli(['requests', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const entries = JSON.parse(listed.stdout) as Array<{ seq: number; path: string; worktree: string; service: string; status: number; route: string }>;
    const entry = entries.find((e) => e.path === '/listed');
    expect(entry).toMatchObject({ worktree: 'dash-board', service: 'ui', status: 200, route: 'local' });
    // The detail the page shows: credentials redacted.
    const base = url.slice(0, url.indexOf('#'));
    const token = url.slice(url.indexOf('=') + 1);
    const detail = (await (await fetch(`${base}api/requests/${entry!.seq}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { requestHeaders: Array<[string, string]> };
    expect(detail.requestHeaders).toEqual(expect.arrayContaining([['authorization', '[redacted]'], ['cookie', '[redacted]']]));
    expect(JSON.stringify(detail)).not.toMatch(/hunter2|secret/);

    const table = await cli(['requests']);
    expect(table.stdout).toMatch(/TIME\s+WORKTREE\s+SERVICE\s+METHOD\s+PATH\s+STATUS\s+DURATION\s+ROUTE\s+BYTES/);
    expect(table.stdout).not.toMatch(/hunter2|secret/);

    const follow = spawn(process.execPath, [CLI, 'requests', '--follow', '--json', '--limit', '0'], { cwd: repo.main, env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const lines = createInterface({ input: follow.stdout });
      const seen: string[] = [];
      lines.on('line', (line) => seen.push(line));
      // The stream is open once a request sent now shows up; send until one does (bounded).
      const found = await waitFor(
        async () => {
          await send(httpPort, 'ui.dash-board.localhost', { path: '/followed' });
          return seen.map((l) => JSON.parse(l) as { path: string }).find((e) => e.path === '/followed');
        },
        10_000,
        'a followed request',
      );
      expect(found).toMatchObject({ path: '/followed' });
    } finally {
      follow.kill();
    }
  }, 60_000);
});
