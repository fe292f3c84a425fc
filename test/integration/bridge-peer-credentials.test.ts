/**
 * Security finding 1 (HIGH): the Docker bridge listeners lent the remotes' credentials to any
 * container (no `Origin`, so `mayLendCredentials` said yes). Here the real listeners run as the
 * daemon runs its bridge ones — registering each connection with its peer — on 127.0.0.1, and
 * clients dial from other loopback addresses to play the peers: 127.0.0.2 a foreign container,
 * 127.0.0.3 a container devproxy started (the vetter stands in for the engine, which
 * test/integration/bridge-credentials-docker.test.ts asks for real). Plain HTTP, HTTPS over
 * HTTP/1.1 and h2, and a WebSocket upgrade: a foreign peer is served without the credentials,
 * ours and the host itself get them, and the loopback listeners are unchanged.
 */
import http, { type IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { createServer } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BridgePeers } from '../../proxy/bridge-peers.js';
import { loopbackLookup } from '../../proxy/upstream-pools.js';
import { remoteTls, remoteWorktreeFor, startRemote, type RemoteWorktree } from '../helpers/remote-worktree.js';
import { echoHandler, h2Get, send, startHttpUpstream, startWsEcho, type TestResponse, type Upstream, type WsUpstream } from '../helpers/upstreams.js';

const SECRET = 'bridge-secret-5c1d7e';
/** Plays a container devproxy did not start. */
const FOREIGN = '127.0.0.2';
/** Plays a container devproxy started. */
const OURS = '127.0.0.3';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Whether this machine lets a client use 127.0.0.2 as its address (Linux routes all of 127/8 to loopback). */
let otherLoopback = false;
beforeAll(async () => {
  otherLoopback = await new Promise<boolean>((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(0, FOREIGN, () => probe.close(() => resolve(true)));
  });
});

interface Setup {
  wt: RemoteWorktree;
  api: Upstream;
  /** Every address the vetter was asked about. */
  asked: string[];
}

async function setup(extra: { ws?: WsUpstream } = {}): Promise<Setup> {
  const api = extra.ws ?? (await startRemote(echoHandler));
  cleanups.push(() => api.close());
  const ui = await startHttpUpstream();
  cleanups.push(() => ui.close());
  const asked: string[] = [];
  // Answers later, as the engine does.
  const peers = new BridgePeers((address) => {
    asked.push(address);
    return new Promise((resolve) => setImmediate(() => resolve(address === OURS)));
  });
  const wt = await remoteWorktreeFor(cleanups, {
    services: `  ui: { local: { port: \${port:ui} } }
  api:
    remote: https://contoso-api-dev.localhost:\${port:api}
    auth: { headers: { x-api-key: "\${env:API_KEY}" } }`,
    upstreams: { api, ui },
    locals: ['ui'],
    https: true,
    proxy: { env: { API_KEY: SECRET } },
    bridgePeers: peers,
  });
  return { wt, api, asked };
}

function keyOf(res: TestResponse | { body: string }): string | undefined {
  return (JSON.parse(res.body) as { headers: Record<string, string> }).headers['x-api-key'];
}

function httpsGet(port: number, ca: string, localAddress: string, agent?: https.Agent): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, servername: 'api.x.localhost', path: '/items', headers: { host: `api.x.localhost:${port}` }, ca, localAddress, agent: agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** GET /items over h2 from `localAddress` (a peer address of its own). */
async function h2GetFrom(port: number, ca: string, localAddress: string): Promise<{ status: number; body: string }> {
  // tls.connect takes `localAddress` from the session's options, which node's types leave out.
  const options = { ca, lookup: loopbackLookup, localAddress } as http2.SecureClientSessionOptions;
  const session = http2.connect(`https://api.x.localhost:${port}`, options);
  try {
    return await h2Get(session, '/items');
  } finally {
    session.close();
  }
}

describe('credentials on the Docker bridge listeners go to devproxy’s own containers only', () => {
  it('plain HTTP: a foreign peer is served without them, ours and the host itself get them, loopback is unchanged', async (ctx) => {
    if (!otherLoopback) ctx.skip('no second loopback address (127.0.0.2) to dial from');
    const { wt, api, asked } = await setup();
    const bridge = wt.bridgePort as number;
    const host = `api.x.localhost:${bridge}`;

    const foreign = await send(bridge, host, { path: '/items', localAddress: FOREIGN });
    expect(foreign.status).toBe(200);
    expect(keyOf(foreign)).toBeUndefined();
    // Served, not refused: a foreign peer reaches local routes and remotes as a foreign web page does.
    expect((await send(bridge, `ui.x.localhost:${bridge}`, { localAddress: FOREIGN })).status).toBe(200);

    expect(keyOf(await send(bridge, host, { path: '/items', localAddress: OURS }))).toBe(SECRET);
    expect(keyOf(await send(bridge, host, { path: '/items' }))).toBe(SECRET);
    expect(keyOf(await send(wt.port, `api.x.localhost:${wt.port}`, { path: '/items', localAddress: FOREIGN }))).toBe(SECRET);
    // The host itself (127.0.0.1 → 127.0.0.1) and loopback listeners never ask; a local route never does.
    expect(asked).toEqual([FOREIGN, OURS]);
    expect(api.requests).toHaveLength(4);

    const notes = wt.logs.filter((line) => line.includes('withheld'));
    expect(notes).toEqual([`api.x.localhost: remote credentials withheld from ${FOREIGN} on the Docker bridge, which is not a container devproxy started`]);
    expect(wt.logs.join('\n')).not.toContain(SECRET);
  });

  it('asks once per connection: the requests of a kept-alive connection share the verdict', async (ctx) => {
    if (!otherLoopback) ctx.skip('no second loopback address (127.0.0.2) to dial from');
    const { wt, asked } = await setup();
    const bridge = wt.bridgePort as number;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: OURS });
    cleanups.push(async () => agent.destroy());
    const get = () =>
      new Promise<string | undefined>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: bridge, path: '/items', headers: { host: `api.x.localhost:${bridge}` }, agent }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve(keyOf({ body: Buffer.concat(chunks).toString() })));
          })
          .on('error', reject);
      });
    expect([await get(), await get(), await get()]).toEqual([SECRET, SECRET, SECRET]);
    expect(asked).toEqual([OURS]);
  });

  it('HTTPS over HTTP/1.1 and h2: a foreign peer gets no credentials, ours does', async (ctx) => {
    if (!otherLoopback) ctx.skip('no second loopback address (127.0.0.2) to dial from');
    const { wt } = await setup();
    const port = wt.bridgeHttpsPort as number;
    const ca = wt.httpsCaPem as string;
    const h1Foreign = await httpsGet(port, ca, FOREIGN);
    expect(h1Foreign.status).toBe(200);
    expect(keyOf(h1Foreign)).toBeUndefined();
    expect(keyOf(await httpsGet(port, ca, OURS))).toBe(SECRET);
    const h2Foreign = await h2GetFrom(port, ca, FOREIGN);
    expect(h2Foreign.status).toBe(200);
    expect(keyOf(h2Foreign)).toBeUndefined();
    expect(keyOf(await h2GetFrom(port, ca, OURS))).toBe(SECRET);
    expect(keyOf(await h2GetFrom(wt.httpsPort as number, ca, FOREIGN))).toBe(SECRET);
  });

  it('a WebSocket upgrade of a foreign peer reaches the remote without credentials, ours with them', async (ctx) => {
    if (!otherLoopback) ctx.skip('no second loopback address (127.0.0.2) to dial from');
    const ws = await startWsEcho(await remoteTls());
    const { wt } = await setup({ ws });
    const bridge = wt.bridgePort as number;
    const upgrade = (localAddress: string) =>
      new Promise<void>((resolve, reject) => {
        const req = http.request({
          host: '127.0.0.1',
          port: bridge,
          path: '/socket',
          localAddress,
          agent: false,
          headers: { host: `api.x.localhost:${bridge}`, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
        });
        req.on('upgrade', (_res: IncomingMessage, socket) => {
          socket.destroy();
          resolve();
        });
        req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
        req.on('error', reject);
        req.end();
      });
    await upgrade(FOREIGN);
    await upgrade(OURS);
    expect(ws.upgradeHeaders.map((h) => h['x-api-key'])).toEqual([undefined, SECRET]);
  });
});
