import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { fixedPort } from '../helpers/fixed-ports.js';
import { waitFor } from '../helpers/git-repo.js';
import { ensureTool } from '../helpers/tools.js';

/**
 * The admin token against another local user (security review, findings 3 and 4), with the real
 * daemon and CLI as subprocesses and Debian's Chromium running the real dashboard page: the
 * browser opener's arguments hold no token, and whoever binds the admin port while the daemon is
 * down gets no token from the open page (not even by relaying the page's challenge to the real
 * daemon), while the page still reconnects by itself to a daemon restarted on its port.
 */
const CHROMIUM = '/usr/bin/chromium';

let unavailable: string | undefined;
let home: string;
let cwd: string;
let env: NodeJS.ProcessEnv;
let browser: Browser | undefined;
/** The dashboard tab, opened by the first test through the redirect file (or by {@link openPage}). */
let page: Page | undefined;
/** The dashboard URL `devproxy dashboard` printed first: the page's port and token. */
let printed: { url: string; port: number; token: string };

const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(args, { cwd, env: { ...env, ...extra } });
const daemonInfo = async () => JSON.parse(await readFile(join(home, 'daemon.json'), 'utf8')) as { adminPort: number; token: string };

async function startDaemon(): Promise<{ adminPort: number; token: string }> {
  const started = await cli(['proxy', 'start', '--no-https']);
  expect(started.code, started.stderr).toBe(0);
  return daemonInfo();
}

async function stopDaemon(): Promise<void> {
  expect((await cli(['proxy', 'stop'])).code).toBe(0);
}

/** The connection pill of the page reads `text`. */
const pill = (text: string) => page!.locator('#conn', { hasText: text }).waitFor({ timeout: 20_000 });

/** Chromium with a tab at `url`, live. */
async function openPage(url: string): Promise<Page> {
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 60_000,
  });
  page = await browser.newPage();
  await page.goto(url, { timeout: 30_000 });
  await pill('live');
  return page;
}

/**
 * Another local user's server on the admin port. It records every request. Without `relayTo` it
 * answers as the reviewer's squatter did (an event stream that never ends); with it, it relays
 * each request to the real daemon's admin port (Host rewritten so the daemon answers) and back.
 */
class Squatter {
  readonly seen: string[] = [];
  /** Proof requests the real daemon answered through the relay. */
  relayedProofs = 0;
  relayTo: number | undefined;
  readonly #server = http.createServer((req, res) => this.#handle(req, res));

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => resolve());
    });
  }

  /** Everything a request carried, to look for the token in. */
  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.seen.push(`${req.method} ${req.url} ${JSON.stringify(req.rawHeaders)}`);
    const relayTo = this.relayTo;
    if (relayTo === undefined) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      return;
    }
    const upstream = http.request({ host: '127.0.0.1', port: relayTo, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${relayTo}` } }, (answer) => {
      if (req.url?.startsWith('/proof?') && answer.statusCode === 200) this.relayedProofs++;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.once('error', () => res.destroy());
    req.pipe(upstream);
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

beforeAll(async () => {
  unavailable = await ensureTool('ensure-chromium.sh', 'chromium');
  home = await mkdtemp(join(tmpdir(), 'devproxy-squat-home-'));
  cwd = await mkdtemp(join(tmpdir(), 'devproxy-squat-cwd-'));
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0' };
  delete env.DISPLAY;
  delete env.WAYLAND_DISPLAY;
  const { adminPort, token } = await startDaemon();
  printed = { url: `http://127.0.0.1:${adminPort}/#token=${token}`, port: adminPort, token };
}, 660_000);

afterAll(async () => {
  await browser?.close();
  await cli(['proxy', 'stop', '--all']);
  await Promise.all([rm(home, { recursive: true, force: true }), rm(cwd, { recursive: true, force: true })]);
});

describe('the admin token and another local user', () => {
  it('devproxy dashboard gives the browser opener a 0600 file in a 0700 folder, never the token; Chromium following it reaches the live dashboard', async (ctx) => {
    const bin = await mkdtemp(join(tmpdir(), 'devproxy-fake-opener-'));
    try {
      const opened = join(bin, 'opened');
      await writeFile(join(bin, 'xdg-open'), `#!/bin/sh\necho "$@" > ${opened}.tmp && mv ${opened}.tmp ${opened}\n`, { mode: 0o755 });
      // A folder left with a wider mode is narrowed, not trusted.
      await mkdir(join(home, 'open'), { mode: 0o755 });
      const result = await cli(['dashboard'], { DISPLAY: ':99', PATH: `${bin}:${process.env.PATH ?? ''}` });
      expect(result.code, result.stderr).toBe(0);
      // The URL printed on the user's own terminal is unchanged.
      expect(result.stdout.trim()).toBe(printed.url);
      const argument = await waitFor(() => readFile(opened, 'utf8').then((text) => text.trim(), () => undefined), 10_000, 'the fake xdg-open to run');
      // What every local user can read (`ps`, /proc/<pid>/cmdline): no token.
      expect(argument).not.toContain(printed.token);
      expect(argument).not.toContain('token');
      expect(argument).toMatch(/^file:\/\/\//);
      const file = fileURLToPath(argument);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(dirname(file))).mode & 0o777).toBe(0o700);
      expect(await readFile(file, 'utf8')).toContain(`content="0;url=${printed.url}"`);

      if (unavailable !== undefined) ctx.skip(unavailable);
      // The browser is given the file and lands on the dashboard, token in the fragment.
      expect((await openPage(argument)).url()).toBe(printed.url);
    } finally {
      await rm(bin, { recursive: true, force: true });
    }
  }, 120_000);

  it('the open page reconnects by itself to a daemon restarted on its port, which keeps its token', async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);
    page ??= await openPage(printed.url);
    await stopDaemon();
    await pill('reconnecting');
    const restarted = await startDaemon();
    expect(restarted).toMatchObject({ adminPort: printed.port, token: printed.token });
    await pill('live');
    expect(page!.url()).toBe(printed.url);
  }, 60_000);

  it('whoever binds the freed admin port gets no token from the page, even relaying its challenge to the real daemon; a daemon that had to move has a new token', async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);
    page ??= await openPage(printed.url);
    const squatter = new Squatter();
    const withToken = () => squatter.seen.filter((line) => line.includes(printed.token));
    const noTokenSeen = () => expect(withToken()).toEqual([]);
    /** The page challenged the daemon behind the relay twice (so the first answer did not satisfy it), or sent its token. */
    const challengedTwice = async (what: string) => {
      const before = squatter.relayedProofs;
      await waitFor(() => (squatter.relayedProofs > before + 1 || withToken().length > 0 ? true : undefined), 30_000, what);
    };
    try {
      await stopDaemon();
      await squatter.listen(printed.port);
      // The page's first request to the squatter carries no token (it was the event stream with it).
      await waitFor(() => (squatter.seen.length > 0 ? true : undefined), 20_000, 'the page to try the squatter');
      noTokenSeen();
      // The squatter answers the page's challenge with a stream that never ends: not the daemon.
      await pill('not verified');
      noTokenSeen();
      // A reload now would load the squatter's page: the address bar no longer holds the token.
      expect(new URL(page!.url()).hash).toBe('');

      // The daemon cannot get its old port: it moves, with a new token, and says so in its log.
      const moved = await startDaemon();
      expect(moved.adminPort).not.toBe(printed.port);
      expect(moved.token).not.toBe(printed.token);
      expect(JSON.parse(await readFile(join(home, 'admin.json'), 'utf8'))).toEqual({ port: moved.adminPort, token: moved.token });
      const log = await readFile(join(home, 'logs', 'daemon.log'), 'utf8');
      expect(log).toContain(`admin port ${printed.port} is taken`);
      expect(log).not.toContain(moved.token);
      squatter.relayTo = moved.adminPort;
      await challengedTwice('the page to challenge the moved daemon through the relay');
      noTokenSeen();

      // Even a daemon that holds the page's token, on another port, cannot vouch for the squatter.
      await stopDaemon();
      const elsewhere = await fixedPort();
      await writeFile(join(home, 'admin.json'), JSON.stringify({ port: elsewhere, token: printed.token }), { mode: 0o600 });
      expect(await startDaemon()).toMatchObject({ adminPort: elsewhere, token: printed.token });
      squatter.relayTo = elsewhere;
      await challengedTwice('the page to challenge the real daemon through the relay');
      noTokenSeen();
      await pill('not verified');

      // The squatter leaves and the daemon is back on the page's port: the page goes live again.
      await stopDaemon();
      await squatter.close();
      await writeFile(join(home, 'admin.json'), JSON.stringify({ port: printed.port, token: printed.token }), { mode: 0o600 });
      await startDaemon();
      await pill('live');
      expect(page!.url()).toBe(printed.url);
      noTokenSeen();
    } finally {
      await squatter.close().catch(() => undefined);
    }
  }, 180_000);
});
