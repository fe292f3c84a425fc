import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { inProcessMinter } from '../../certs/in-process-minter.js';
import { createCertificateStore } from '../../certs/store.js';
import { startHttpsProxy } from '../../proxy/https-listener.js';
import { createProxyHandler } from '../../proxy/server.js';
import type { ProxyHandler } from '../../proxy/types.js';
import { local, route, tableOf } from '../helpers/routes.js';
import { ensureTool, nssHomeTrusting } from '../helpers/tools.js';

const UI = 'ui.feature-x.localhost';
const CHROMIUM = '/usr/bin/chromium';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

let unavailable: string | undefined;
beforeAll(async () => {
  unavailable = await ensureTool('ensure-chromium.sh', 'chromium/certutil');
}, 620_000);

/** The page Chromium loads: it opens a WebSocket back through the proxy and shows the echo. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>devproxy</title>
<p id="out">waiting</p>
<script>
  const out = document.getElementById('out');
  const ws = new WebSocket('wss://' + location.host + '/ws');
  ws.onopen = () => ws.send('hello through devproxy');
  ws.onmessage = (event) => { out.textContent = 'echo: ' + event.data; };
  ws.onerror = () => { out.textContent = 'websocket error'; };
</script>`;

/** A dev server stand-in: the page on `/`, a WebSocket echo on `/ws`. */
async function startUiUpstream(): Promise<number> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  });
  const wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', (socket) => socket.on('message', (data) => socket.send(String(data))));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        server.close(resolve);
        server.closeAllConnections();
      }),
  );
  return (server.address() as AddressInfo).port;
}

describe('headless Chromium through the HTTPS listener', () => {
  it('loads a worktree page over h2 with the CA trusted by NSS, and its WebSocket echoes', async (ctx) => {
    if (unavailable !== undefined) ctx.skip(unavailable);
    const uiPort = await startUiUpstream();
    const table = tableOf(route(UI, local(uiPort)));
    const devproxyHome = await mkdtemp(join(tmpdir(), 'devproxy-browser-'));
    cleanups.push(() => rm(devproxyHome, { recursive: true, force: true }));
    const options = { getTable: () => table, httpPort: 0, httpsPort: 0 };
    const handler = createProxyHandler(options);
    cleanups.push(() => handler.close());
    // Records which transport each WebSocket arrived on, then hands it to the real handler.
    const upgrades: string[] = [];
    const observed: ProxyHandler = {
      handleRequest: (req, res) => handler.handleRequest(req, res),
      handleUpgrade: (req, socket, head) => {
        upgrades.push('http/1.1 upgrade');
        handler.handleUpgrade(req, socket, head);
      },
      handleWebSocketConnect: (req) => {
        upgrades.push('h2 extended CONNECT');
        handler.handleWebSocketConnect(req);
      },
      close: () => handler.close(),
    };
    const certificates = createCertificateStore({ home: devproxyHome, minter: inProcessMinter, isKnownName: (name) => table.routes.has(name) });
    const server = await startHttpsProxy({ handler: observed, port: 0, certificates });
    cleanups.push(() => server.close());
    options.httpsPort = server.port;

    const browserHome = await nssHomeTrusting(certificates.caPath);
    cleanups.push(() => rm(browserHome, { recursive: true, force: true }));
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      env: { ...process.env, HOME: browserHome },
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
      timeout: 60_000,
    });
    cleanups.push(() => browser.close());
    const page = await browser.newPage();
    const response = await page.goto(`https://${UI}:${server.port}/`, { timeout: 30_000 });
    expect(response?.status()).toBe(200);
    await expect.poll(() => page.textContent('#out'), { timeout: 15_000 }).toBe('echo: hello through devproxy');
    // A string: the expression runs in the page, whose DOM types this Node project does not load.
    const protocol = await page.evaluate<string>("performance.getEntriesByType('navigation')[0].nextHopProtocol");
    expect(protocol).toBe('h2');
    // Chromium opens the WebSocket on its h2 connection (RFC 8441), the path peer tools break.
    expect(upgrades).toEqual(['h2 extended CONNECT']);
  }, 180_000);
});
