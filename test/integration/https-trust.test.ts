import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inProcessMinter } from '../../certs/in-process-minter.js';
import { createCertificateStore } from '../../certs/store.js';
import { installTrust, uninstallTrust } from '../../certs/trust.js';
import { startHttpsProxy } from '../../proxy/https-listener.js';
import { createProxyHandler } from '../../proxy/server.js';
import { local, route, tableOf } from '../helpers/routes.js';
import { ensureTool } from '../helpers/tools.js';
import { startHttpUpstream } from '../helpers/upstreams.js';

const run = promisify(execFile);
const API = 'api.feature-x.localhost';
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const DEBIAN_ANCHORS = '/usr/local/share/ca-certificates';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function available(command: string, args: string[]): Promise<boolean> {
  return await run(command, args).then(
    () => true,
    (error: { code?: unknown }) => error.code !== 'ENOENT',
  );
}

/** The HTTPS listener with a real proxy handler, and the CA it serves from. */
async function httpsProxy(): Promise<{ port: number; caPath: string; caPem: string }> {
  const home = await tempDir('devproxy-trust-home-');
  const upstream = await startHttpUpstream();
  cleanups.push(() => upstream.close());
  const table = tableOf(route(API, local(upstream.port)));
  const handler = createProxyHandler({ getTable: () => table, httpPort: 0 });
  cleanups.push(() => handler.close());
  const certificates = createCertificateStore({ home, minter: inProcessMinter, isKnownName: (name) => table.routes.has(name) });
  const server = await startHttpsProxy({ handler, port: 0, hosts: ['127.0.0.1'], certificates });
  cleanups.push(() => server.close());
  return { port: server.port, caPath: certificates.caPath, caPem: await readFile(certificates.caPath, 'utf8') };
}

/** curl with only the system trust store: succeeds once the CA is installed there. */
async function curlSystemTrust(port: number): Promise<number> {
  return await run('curl', ['-sS', '-o', '/dev/null', '--noproxy', '*', '--max-time', '10', '--resolve', `${API}:${port}:127.0.0.1`, `https://${API}:${port}/`]).then(
    () => 0,
    (error: { code: number }) => error.code,
  );
}

/** The base64 body of a PEM, as it appears in a concatenated bundle. */
function pemBody(pem: string): string {
  return pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '').slice(0, 200);
}

async function bundleHas(caPem: string): Promise<boolean> {
  return (await readFile(SYSTEM_BUNDLE, 'utf8')).replace(/\s+/g, '').includes(pemBody(caPem));
}

describe('devproxy trust against real stores', () => {
  let noCurl: string | undefined;
  beforeAll(async () => {
    noCurl = await ensureTool('ensure-curl.sh', 'curl');
  }, 620_000);

  it('adds the CA to an NSS database with certutil, trusted for TLS servers, and removes it again', async (ctx) => {
    if (!(await available('certutil', ['-H']))) ctx.skip('NSS certutil (libnss3-tools) is not installed');
    const { caPath } = await httpsProxy();
    const home = await tempDir('devproxy-trust-nss-');
    const db = join(home, '.pki', 'nssdb');
    await mkdir(db, { recursive: true });
    await run('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);

    const installed = await installTrust({ caPath, homeDir: home, targets: ['nss'] });
    expect(installed).toEqual([{ target: `NSS ${db}`, done: true, detail: 'added as "devproxy" (trusted for TLS servers)' }]);
    const listed = (await run('certutil', ['-L', '-d', `sql:${db}`])).stdout;
    expect(listed).toMatch(/^devproxy\s+C,,\s*$/m);

    const removed = await uninstallTrust({ caPath, homeDir: home, targets: ['nss'] });
    expect(removed).toEqual([{ target: `NSS ${db}`, done: true, detail: 'removed "devproxy"' }]);
    expect((await run('certutil', ['-L', '-d', `sql:${db}`])).stdout).not.toContain('devproxy');
  });

  it('installs into the Debian system store so curl trusts devproxy with no --cacert, and restores it', async (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip('changes the system trust store: runs only as root');
    const debian = await access(DEBIAN_ANCHORS).then(
      () => true,
      () => false,
    );
    if (!debian || !(await available('update-ca-certificates', ['--help']))) ctx.skip('not a Debian/Ubuntu trust store');
    if (noCurl !== undefined) ctx.skip(noCurl);
    const { port, caPath, caPem } = await httpsProxy();
    // A user name of its own, so a real `devproxy trust` of this machine is never touched.
    const user = `test-${randomBytes(4).toString('hex')}`;
    const trust = { caPath, user, targets: ['system' as const] };
    cleanups.push(() => uninstallTrust(trust));

    expect(await curlSystemTrust(port)).toBe(60); // CURLE_PEER_FAILED_VERIFICATION
    const [installed] = await installTrust(trust);
    expect(installed).toMatchObject({ target: 'system (Debian/Ubuntu)', done: true });
    expect(await bundleHas(caPem)).toBe(true);
    expect(await curlSystemTrust(port)).toBe(0);

    const [removed] = await uninstallTrust(trust);
    expect(removed).toMatchObject({ done: true, detail: expect.stringContaining('removed') });
    expect(await bundleHas(caPem)).toBe(false);
    expect(await curlSystemTrust(port)).toBe(60);
  }, 120_000);
});
