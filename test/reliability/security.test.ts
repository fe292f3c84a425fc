import { spawn } from 'node:child_process';
import { readFile, readdir, stat } from 'node:fs/promises';
import http from 'node:http';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { waitFor } from '../helpers/git-repo.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';
import { prepareDaemon, socketInodes, type DaemonUnderTest } from './daemon-harness.js';
import { within } from './raw-client.js';
import { tally } from './tally.js';

/**
 * Who can reach what, against a real daemon: the admin API wants the token and refuses other
 * origins and hosts; secrets on disk are 0600; listeners are loopback only; a client cannot
 * pose as another worktree with forwarding headers; a planted secret never leaks.
 */
const admin = tally('admin-api');
const files = tally('file-modes');
const listeners = tally('loopback-listeners');
const spoofing = tally('header-spoofing');
const secrets = tally('planted-secret');
const requestLog = tally('request-log-redaction');

const SECRET = 'planted-secret-7f3a9c1e-do-not-leak';
const API = 'api.contoso.localhost';
const PAY = 'pay.contoso.localhost';

let local: Upstream;
let remote: Upstream;
let d: DaemonUnderTest;

beforeAll(async () => {
  local = await startHttpUpstream();
  remote = await startHttpUpstream();
  d = await prepareDaemon(`name: contoso
services:
  api:
    local: { port: ${local.port} }
    remote: http://api-dev.localhost:${remote.port}
  pay:
    remote: http://pay-dev.localhost:${remote.port}/v1
    auth: { headers: { x-functions-key: "\${env:DEVPROXY_REL_SECRET}" } }
  broken:
    remote: http://broken-dev.localhost:1
    wake: false
    auth: { headers: { authorization: "Bearer \${env:DEVPROXY_REL_SECRET}" } }
profiles:
  standard: [api]
default: standard
`);
  d.env.DEVPROXY_REL_SECRET = SECRET;
  expect((await d.cli(['init'])).code).toBe(0);
  const started = await d.cli(['proxy', 'start']);
  expect(started.code, started.stderr + started.stdout).toBe(0);
  await waitFor(async () => ((await d.get(API)).status === 200 ? true : undefined), 5_000, 'api routed');
});

afterAll(async () => {
  await d?.cleanup();
  await Promise.all([local?.close(), remote?.close()]);
});

/** A raw request to the admin API with exactly the headers given. */
async function adminRequest(path: string, headers: Record<string, string>, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const info = (await d.info())!;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: info.adminPort, path, method, headers, agent: false, setHost: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admin API', () => {
  const cases: Array<[string, (token: string, host: string) => Record<string, string>, string, number]> = [
    ['no token', (_t, host) => ({ host }), '/api/status', 401],
    ['a wrong token', (_t, host) => ({ host, authorization: 'Bearer 0000' }), '/api/status', 401],
    ['a wrong token of the right length', (t, host) => ({ host, authorization: `Bearer ${'0'.repeat(t.length)}` }), '/api/status', 401],
    ['the token without "Bearer"', (t, host) => ({ host, authorization: t }), '/api/status', 401],
    ['the token as Basic', (t, host) => ({ host, authorization: `Basic ${Buffer.from(`x:${t}`).toString('base64')}` }), '/api/status', 401],
    ['the token in the query string', (t, host) => ({ host }), '/api/status?token=TOKEN', 401],
    ['the token in a cookie', (t, host) => ({ host, cookie: `token=${t}` }), '/api/status', 401],
    ['stop without a token', (_t, host) => ({ host }), '/api/stop', 401],
    ['reload without a token', (_t, host) => ({ host }), '/api/reload', 401],
    ['the right token from a foreign Origin (CSRF)', (t, host) => ({ host, authorization: `Bearer ${t}`, origin: 'http://evil.com' }), '/api/status', 403],
    ['stop from a foreign Origin (CSRF)', (t, host) => ({ host, authorization: `Bearer ${t}`, origin: 'https://evil.com' }), '/api/stop', 403],
    ['a null Origin (sandboxed page)', (t, host) => ({ host, authorization: `Bearer ${t}`, origin: 'null' }), '/api/status', 403],
    ['the Origin of a routed app', (t, host) => ({ host, authorization: `Bearer ${t}`, origin: `http://${API}:${d.httpPort}` }), '/api/status', 403],
    ['a foreign Host (DNS rebinding)', (t) => ({ host: 'evil.com', authorization: `Bearer ${t}` }), '/api/status', 421],
    ['a foreign Host with our port', (t, host) => ({ host: `evil.com:${host.split(':')[1]}`, authorization: `Bearer ${t}` }), '/api/status', 421],
    ['a routed hostname as Host', (t, host) => ({ host: `${API}:${host.split(':')[1]}`, authorization: `Bearer ${t}` }), '/api/status', 421],
    ['the dashboard under a foreign Host', () => ({ host: 'evil.com' }), '/', 421],
    ['no Host at all', (t) => ({ authorization: `Bearer ${t}` }), '/api/status', 400],
  ];
  for (const [what, headersOf, path, status] of cases) {
    it(`${what} → ${status}`, async () => {
      await admin.check(async () => {
        const info = (await d.info())!;
        const host = `127.0.0.1:${info.adminPort}`;
        const method = path === '/api/stop' || path === '/api/reload' ? 'POST' : 'GET';
        const res = await adminRequest(path.replace('TOKEN', info.token), headersOf(info.token, host), method);
        expect(res.status).toBe(status);
        expect(res.body).not.toContain('"worktrees"');
        expect(res.headers['access-control-allow-origin']).toBeUndefined();
      });
    });
  }

  it('the right token on the loopback Host is answered (and the daemon still runs after the refused stops)', async () => {
    await admin.check(async () => {
      const info = (await d.info())!;
      for (const host of [`127.0.0.1:${info.adminPort}`, `localhost:${info.adminPort}`]) {
        const res = await adminRequest('/api/status', { host, authorization: `Bearer ${info.token}` });
        expect(res.status).toBe(200);
        expect(JSON.parse(res.body).daemon.running).toBe(true);
      }
      const same = await adminRequest('/api/status', { host: `127.0.0.1:${info.adminPort}`, authorization: `Bearer ${info.token}`, origin: `http://127.0.0.1:${info.adminPort}` });
      expect(same.status).toBe(200);
    });
  });

  it('a CORS preflight from a foreign origin is not granted', async () => {
    await admin.check(async () => {
      const info = (await d.info())!;
      const res = await adminRequest('/api/stop', { host: `127.0.0.1:${info.adminPort}`, origin: 'http://evil.com', 'access-control-request-method': 'POST' }, 'OPTIONS');
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
    });
  });
});

describe('files holding secrets', () => {
  it('daemon.json (admin token) is mode 0600 and the home folder 0700', async () => {
    await files.check(async () => {
      expect((await stat(join(d.home, 'daemon.json'))).mode & 0o777).toBe(0o600);
      expect((await stat(d.home)).mode & 0o777).toBe(0o700);
    });
  });

  it('the CA key and every issued key are mode 0600', async () => {
    await files.check(async () => {
      const certs = join(d.home, 'certs');
      const names = await readdir(certs, { recursive: true });
      const keys: string[] = [];
      for (const name of names) {
        const path = join(certs, name);
        const info = await stat(path);
        if (!info.isFile()) continue;
        const text = await readFile(path, 'utf8');
        if (text.includes('PRIVATE KEY')) {
          keys.push(name);
          expect(info.mode & 0o777, name).toBe(0o600);
        }
      }
      expect(keys.length).toBeGreaterThan(0);
    });
  });
});

/** Local addresses of this machine other than loopback. */
function otherAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal && a.family === 'IPv4')
    .map((a) => a!.address);
}

function tryConnect(host: string, port: number): Promise<string> {
  return within(
    new Promise((resolve) => {
      const socket = connect(port, host, () => {
        socket.destroy();
        resolve('connected');
      });
      socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    }),
    3_000,
    `connect ${host}:${port}`,
  );
}

/** An IPv4 address as /proc/net/tcp writes it (the 32-bit value in host byte order, hex). */
function procHex(ipv4: string): string {
  return ipv4.split('.').reverse().map((octet) => Number(octet).toString(16).padStart(2, '0')).join('').toUpperCase();
}

describe('listeners bind to loopback only', () => {
  it('every listening socket of the daemon is on 127.0.0.1 or ::1, or a Docker bridge gateway it publishes for HTTP/HTTPS (/proc/net/tcp)', async () => {
    await listeners.check(async () => {
      let info = (await d.info())!;
      const inodes = await socketInodes(info.pid);
      const listening: string[] = [];
      for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
        const lines = (await readFile(table, 'utf8').catch(() => '')).split('\n').slice(1);
        for (const line of lines) {
          const f = line.trim().split(/\s+/);
          if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9]!)) continue;
          listening.push(f[1]!);
        }
      }
      expect(listening.length).toBeGreaterThanOrEqual(3);
      // Containers reach the proxy on the bridge gateway once the daemon runs Docker services
      // (issue #12): the proxy listeners only, on addresses the daemon names in daemon.json.
      const gatewaysOf = (named: typeof info) => (named.listen ?? []).filter((address) => address !== '127.0.0.1' && address !== '::1' && address.includes('.')).map(procHex);
      const isLoopback = (local: string) => ['0100007F', '00000000000000000000000001000000'].includes(local.split(':')[0]!);
      // A gateway listener that opened (other files run containers on the same engine) between
      // reading daemon.json and /proc is named there a moment later: read it again until it is.
      info = await waitFor(async () => {
        const named = (await d.info())!;
        return listening.every((local) => isLoopback(local) || gatewaysOf(named).includes(local.split(':')[0]!)) ? named : undefined;
      }, 5_000, 'daemon.json to name every non-loopback listener').catch(async () => (await d.info())!);
      const gateways = gatewaysOf(info);
      const proxyPorts = [info.httpPort, info.httpsPort].map((port) => port?.toString(16).toUpperCase().padStart(4, '0'));
      for (const local of listening) {
        const [address, port] = local.split(':');
        if (isLoopback(local)) continue;
        expect(gateways, `${local} is neither loopback nor a published bridge gateway`).toContain(address);
        expect(proxyPorts, `${local}: only the proxy listeners may use a bridge gateway`).toContain(port);
      }
    });
  });

  it('the proxy, HTTPS and admin ports refuse connections on the machine’s other addresses', async () => {
    const addresses = otherAddresses();
    if (addresses.length === 0) {
      console.log('reliability loopback-listeners: no non-loopback address on this machine; covered by /proc/net/tcp only');
      return;
    }
    const info = (await d.info())!;
    for (const address of addresses) {
      for (const port of [info.httpPort, info.httpsPort!, info.adminPort]) {
        await listeners.check(async () => {
          expect(await tryConnect(address, port), `${address}:${port}`).toBe('ECONNREFUSED');
        });
      }
    }
  });

  it('--host 0.0.0.0 is explicit and prints a warning', async () => {
    await listeners.check(async () => {
      const child = spawn(process.execPath, [CLI, 'proxy', 'start', '--foreground', '--host', '0.0.0.0', '--port', '0', '--no-https'], {
        cwd: d.repo.main,
        env: { ...d.env, DEVPROXY_HOME: join(d.home, 'exposed-home') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      try {
        await waitFor(() => (out.includes('listening') || child.exitCode !== null ? true : undefined), 10_000, 'the exposed daemon to start');
        expect(out).toMatch(/warn .*0\.0\.0\.0.*reachable from other machines/);
      } finally {
        child.kill('SIGTERM');
        await within(new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve))), 10_000, 'the exposed daemon to stop');
      }
    });
  });
});

describe('forwarding headers cannot be spoofed', () => {
  const forged = {
    'x-forwarded-for': '10.9.9.9',
    'x-forwarded-host': 'api.other-worktree.localhost',
    'x-forwarded-proto': 'https',
    'x-forwarded-port': '1',
    forwarded: 'for=10.9.9.9;host=api.other-worktree.localhost;proto=https',
    'x-devproxy-worktree': 'other-worktree',
    'x-devproxy-route': 'local',
    'x-devproxy-service': 'admin',
    'x-original-host': 'api.other-worktree.localhost',
  };

  async function through(host: string): Promise<http.IncomingHttpHeaders> {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: d.httpPort, path: '/who', headers: { host, ...forged }, agent: false }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(res.status, res.body).toBe(200);
    return (JSON.parse(res.body) as { headers: http.IncomingHttpHeaders }).headers;
  }

  function expectOurs(seen: http.IncomingHttpHeaders, host: string): void {
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-host']).toBe(host);
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-port']).toBeUndefined();
    expect(seen.forwarded).toBeUndefined();
    expect(seen['x-devproxy-route']).toBeUndefined();
    expect(seen['x-devproxy-service']).toBeUndefined();
    // devproxy may name the worktree on remote hops, but only the real one.
    expect([undefined, 'contoso']).toContain(seen['x-devproxy-worktree']);
  }

  it('on a local hop the upstream sees devproxy’s values only', async () => {
    await spoofing.check(async () => {
      const seen = await through(API);
      expectOurs(seen, API);
      expect(seen.host).toBe(API);
    });
  });

  it('x_original_host_spoofable_on_local_hop: a client-sent X-Original-Host does not reach a local app', async () => {
    await spoofing.check(async () => {
      const seen = await through(API);
      expect(seen['x-original-host']).toBeUndefined();
    });
  });

  it('on a remote hop the upstream sees devproxy’s values only', async () => {
    await spoofing.check(async () => {
      const seen = await through(PAY);
      expectOurs(seen, PAY);
      expect(String(seen['x-original-host'] ?? '')).not.toContain('other-worktree');
      expect(seen.host).toBe(`pay-dev.localhost:${remote.port}`);
    });
  });
});

describe('a planted secret never leaks', () => {
  it('not on the local hop, not in status (CLI and API), not on error pages, not in the daemon log', async () => {
    await secrets.check(async () => {
      local.requests.length = 0;
      await d.get(API, '/local-hop');
      expect(JSON.stringify(local.requests)).not.toContain(SECRET);

      // The remote hop is the one place the secret belongs.
      remote.requests.length = 0;
      await d.get(PAY, '/x');
      expect(remote.requests.at(-1)?.headers['x-functions-key']).toBe(SECRET);

      const pages = await within(Promise.all([d.get('broken.contoso.localhost'), d.get('nope.contoso.localhost'), d.get('localhost')]), 10_000, 'error pages');
      expect(pages[0]!.status).toBeGreaterThanOrEqual(500);
      for (const page of pages) expect(page.body).not.toContain(SECRET);
      const htmlPage = await new Promise<string>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: d.httpPort, headers: { host: 'broken.contoso.localhost', accept: 'text/html' }, agent: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(body));
        }).on('error', reject);
      });
      expect(htmlPage).not.toContain(SECRET);

      const cliStatus = await within(d.cli(['status', '--json']), 10_000, 'status --json');
      expect(cliStatus.code).toBe(0);
      expect(cliStatus.stdout + cliStatus.stderr).not.toContain(SECRET);
      expect((await d.cli(['status'])).stdout).not.toContain(SECRET);
      expect((await d.cli(['proxy', 'status', '--json'])).stdout).not.toContain(SECRET);
      expect(JSON.stringify(await d.status())).not.toContain(SECRET);
      const env = await within(d.cli(['env', '--format', 'json']), 10_000, 'env');
      expect(env.stdout).not.toContain(SECRET);
      const log = await readFile(join(d.home, 'logs', 'daemon.log'), 'utf8');
      expect(log.length).toBeGreaterThan(0);
      expect(log).not.toContain(SECRET);
    });
  });
});

describe('the request log hides what a client sends as a secret', () => {
  it('API-key headers and secret query values are forwarded as sent, and read `[redacted]` in `devproxy requests --json` and the detail', async () => {
    await requestLog.check(async () => {
      const sent = { functionsKey: 'client-fn-key-5b1d', apimKey: 'client-apim-key-9c2e', code: 'client-code-7a4f', sig: 'client-sig-3e8b' };
      const path = `/fn/run?code=${sent.code}&sig=${sent.sig}&name=ok`;
      local.requests.length = 0;
      const answered = await new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: d.httpPort, path, agent: false, headers: { host: API, 'x-functions-key': sent.functionsKey, 'ocp-apim-subscription-key': sent.apimKey } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        }).on('error', reject);
      });
      expect(answered).toBe(200);
      // Redaction is for the log only: the upstream gets the request unchanged.
      expect(local.requests.at(-1)).toMatchObject({ url: path, headers: { 'x-functions-key': sent.functionsKey, 'ocp-apim-subscription-key': sent.apimKey } });

      const listed = await within(d.cli(['requests', '--json']), 10_000, 'requests --json');
      expect(listed.code, listed.stderr).toBe(0);
      const entries = JSON.parse(listed.stdout) as Array<{ seq: number; path: string }>;
      const entry = entries.findLast((e) => e.path.startsWith('/fn/run'));
      expect(entry?.path).toBe('/fn/run?code=[redacted]&sig=[redacted]&name=ok');
      const info = (await d.info())!;
      const detail = await adminRequest(`/api/requests/${entry!.seq}`, { host: `127.0.0.1:${info.adminPort}`, authorization: `Bearer ${info.token}` });
      expect(detail.status).toBe(200);
      const parsed = JSON.parse(detail.body) as { path: string; requestHeaders: Array<[string, string]> };
      expect(parsed.path).toBe(entry!.path);
      expect(parsed.requestHeaders).toEqual(expect.arrayContaining([['x-functions-key', '[redacted]'], ['ocp-apim-subscription-key', '[redacted]']]));
      const table = await within(d.cli(['requests']), 10_000, 'requests');
      for (const secret of Object.values(sent)) expect(listed.stdout + detail.body + table.stdout).not.toContain(secret);
    });
  });
});
