import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { PemPair } from '../../certs/authority.js';
import { inProcessMinter } from '../../certs/in-process-minter.js';
import { createWorkerMinter, type WorkerMinter } from '../../certs/mint-worker-client.js';
import { waitFor } from '../helpers/git-repo.js';

/** The worker script as the product runs it, built in dist/ by the integration set-up: the minter's default. */
const WORKER = new URL('../../dist/certs/mint-worker.js', import.meta.url);
// Long enough that reading the worker's pid from /proc ends before the worker stops on a busy
// machine: tests read it after a request, when the idle countdown has already begun.
const IDLE_MS = 1_500;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A minter on its default worker script, or on `workerUrl`. */
function minterWithLog(workerUrl?: URL): { minter: WorkerMinter; log: string[] } {
  const log: string[] = [];
  const logger = { info: (m: string) => log.push(`info ${m}`), warn: (m: string) => log.push(`warn ${m}`), error: (m: string) => log.push(`error ${m}`) };
  const minter = createWorkerMinter({ workerUrl, idleMs: IDLE_MS, logger });
  cleanups.push(() => minter.close());
  return { minter, log };
}

const started = (log: string[]) => log.filter((line) => line === 'info certificate worker started').length;
const stopped = (log: string[]) => log.filter((line) => line === `info certificate worker stopped after ${IDLE_MS} ms idle`).length;

/**
 * The pids of this process's children running the worker script: each thread's `children` list
 * in /proc, a few reads however busy the machine, rather than a scan of every process, which had
 * to end within the worker's idle time.
 */
async function workerProcesses(): Promise<number[]> {
  const tasks = await readdir('/proc/self/task');
  const lists = await Promise.all(tasks.map((task) => readFile(`/proc/self/task/${task}/children`, 'utf8').catch(() => '')));
  const children = lists.join(' ').split(/\s+/).filter(Boolean).map(Number);
  const cmdlines = await Promise.all(children.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')));
  return children.filter((_, i) => cmdlines[i]!.includes('mint-worker.js'));
}

function expectSignedBy(leaf: PemPair, ca: PemPair, name: string): void {
  const cert = new X509Certificate(leaf.certPem);
  const caCert = new X509Certificate(ca.certPem);
  expect(cert.checkIssued(caCert)).toBe(true);
  expect(cert.verify(caCert.publicKey)).toBe(true);
  expect(cert.checkHost(name)).toBe(name);
}

describe('minting in the certificate worker', () => {
  it('mints a CA and a burst of leaves in one worker, which stops once idle; the next request starts another', async () => {
    const { minter, log } = minterWithLog();
    const ca = await minter.createCertificateAuthority({ commonName: 'devproxy worker test CA' });
    expect(new X509Certificate(ca.certPem).ca).toBe(true);
    const names = ['api.feature-a.localhost', 'api.feature-b.localhost', 'api.feature-c.localhost', 'feature-d.localhost'];
    const leaves = await Promise.all(names.map((name) => minter.issueLeafCertificate(ca, [name])));
    names.forEach((name, i) => expectSignedBy(leaves[i]!, ca, name));
    expect(started(log)).toBe(1);

    await waitFor(() => (stopped(log) === 1 ? true : undefined), 10_000, 'the idle worker to stop');
    const later = await minter.issueLeafCertificate(ca, ['ui.feature-e.localhost'], { validityDays: 2 });
    expectSignedBy(later, ca, 'ui.feature-e.localhost');
    expect(started(log)).toBe(2);
    expect(log.filter((line) => !line.startsWith('info'))).toEqual([]);
  });

  it('mints in a process of its own, which exits once idle (so what minting allocated leaves with it)', async () => {
    const { minter, log } = minterWithLog();
    const ca = await minter.createCertificateAuthority({ commonName: 'devproxy worker test CA' });
    const running = await workerProcesses();
    expect(running).toHaveLength(1);
    expect(running[0]).not.toBe(process.pid);
    await waitFor(() => (stopped(log) === 1 ? true : undefined), 10_000, 'the idle worker to stop');
    await waitFor(async () => ((await workerProcesses()).length === 0 ? true : undefined), 10_000, 'the worker process to be gone');
    expectSignedBy(await minter.issueLeafCertificate(ca, ['api.feature-f.localhost']), ca, 'api.feature-f.localhost');
  });

  it("starts the worker with none of the daemon's environment: no NODE_OPTIONS, no secrets of remote hops", async () => {
    // The daemon's environment as a user's shell may give it: a token a remote hop's auth reads, and
    // NODE_OPTIONS, which would load code into the worker or change its heap.
    const set = { DEVPROXY_TEST_REMOTE_TOKEN: 'secret-token-value', NODE_OPTIONS: '--max-old-space-size=64' };
    const saved = Object.fromEntries(Object.keys(set).map((name) => [name, process.env[name]]));
    Object.assign(process.env, set);
    cleanups.push(async () => {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    });
    // Idle long enough for the worker to be read from /proc before it stops.
    const minter = createWorkerMinter({ idleMs: 60_000 });
    cleanups.push(() => minter.close());
    await minter.createCertificateAuthority({ commonName: 'devproxy worker test CA' });
    const [pid, ...others] = await workerProcesses();
    expect(others).toEqual([]);
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0').filter(Boolean);
    // Only what fork adds for the IPC channel itself.
    expect(environ.map((variable) => variable.slice(0, variable.indexOf('='))).sort()).toEqual(['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE']);
  });

  it('closes an idle worker in a process that has nothing else to do (its shutdown waits for the exit)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'devproxy-mint-close-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const script = join(dir, 'close-idle.mjs');
    const client = new URL('../../dist/certs/mint-worker-client.js', import.meta.url);
    await writeFile(
      script,
      `import { createWorkerMinter } from ${JSON.stringify(client.href)};
const minter = createWorkerMinter({});
await minter.createCertificateAuthority({ commonName: 'devproxy worker test CA' });
await minter.close();
console.log('closed');
`,
    );
    const run = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30_000 });
    expect({ status: run.status, stdout: run.stdout.trim() }).toEqual({ status: 0, stdout: 'closed' });
  });

  it('rejects with the same error class and message as minting in-process', async () => {
    const { minter } = minterWithLog();
    const ca = await inProcessMinter.createCertificateAuthority({ commonName: 'devproxy worker test CA' });
    const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const failures: Array<(m: typeof minter | typeof inProcessMinter) => Promise<PemPair>> = [
      (m) => m.issueLeafCertificate(ca, []),
      (m) => m.issueLeafCertificate({ certPem: ca.certPem, keyPem: rsaKey }, ['api.feature-x.localhost']),
      (m) => m.issueLeafCertificate({ certPem: ca.certPem, keyPem: 'not a key' }, ['api.feature-x.localhost']),
    ];
    for (const fail of failures) {
      const inProcess = (await fail(inProcessMinter).catch((error: unknown) => error)) as Error;
      const inWorker = (await fail(minter).catch((error: unknown) => error)) as Error;
      expect(inProcess).toBeInstanceOf(Error);
      expect(inWorker.constructor).toBe(inProcess.constructor);
      expect({ name: inWorker.name, message: inWorker.message, code: (inWorker as { code?: string }).code }).toEqual({
        name: inProcess.name,
        message: inProcess.message,
        code: (inProcess as { code?: string }).code,
      });
    }
    // The worker survives its callers' mistakes.
    expectSignedBy(await minter.issueLeafCertificate(ca, ['api.feature-x.localhost']), ca, 'api.feature-x.localhost');
  });

  it('fails the pending requests of a worker that dies with a clear error, and starts a new one for the next', async () => {
    // The real worker, and a listener that ends the process when asked for `crash.localhost`.
    const dir = await mkdtemp(join(tmpdir(), 'devproxy-mint-crash-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const crashing = join(dir, 'crashing-worker.mjs');
    await writeFile(
      crashing,
      `import ${JSON.stringify(WORKER.href)};
process.on('message', (request) => { if (request.names?.includes('crash.localhost')) process.exit(3); });
`,
    );
    const { minter, log } = minterWithLog(pathToFileURL(crashing));
    const ca = await minter.createCertificateAuthority({ commonName: 'devproxy worker test CA' });
    // Messages arrive in order: the process dies on the first, before it can answer the second.
    const results = await Promise.allSettled([minter.issueLeafCertificate(ca, ['crash.localhost']), minter.issueLeafCertificate(ca, ['api.feature-x.localhost'])]);
    const died = { code: 'DEVPROXY_ERR_INTERNAL', message: 'the certificate worker stopped before answering (exit code 3); the next request starts a new one' };
    expect(results).toMatchObject([
      { status: 'rejected', reason: died },
      { status: 'rejected', reason: died },
    ]);
    expect(log).toContain('warn certificate worker died with 2 request(s) pending: exit code 3');

    expectSignedBy(await minter.issueLeafCertificate(ca, ['ui.feature-x.localhost']), ca, 'ui.feature-x.localhost');
    expect(started(log)).toBe(2);
  });

  it('fails the pending requests of a worker that closes its channel but stays alive at once, kills it, and starts a new one for the next', async () => {
    // The real worker, and a listener that closes the IPC channel when asked for `hangup.localhost`
    // but keeps the process running: it can answer nothing more, and would never exit by itself.
    const dir = await mkdtemp(join(tmpdir(), 'devproxy-mint-hangup-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const hangingUp = join(dir, 'hanging-up-worker.mjs');
    await writeFile(
      hangingUp,
      `import ${JSON.stringify(WORKER.href)};
// The real worker's answer to the hangup request finds the channel closed: not this test's concern.
process.on('error', () => {});
process.on('message', (request) => {
  if (!request.names?.includes('hangup.localhost')) return;
  setInterval(() => {}, 60_000);
  process.disconnect();
});
`,
    );
    const { minter, log } = minterWithLog(pathToFileURL(hangingUp));
    const ca = await minter.createCertificateAuthority({ commonName: 'devproxy worker test CA' });
    const [pid] = await workerProcesses();
    // Bounded: before, the request stayed pending for as long as the worker lived.
    let bound: NodeJS.Timeout | undefined;
    const hangup = await Promise.race([
      minter.issueLeafCertificate(ca, ['hangup.localhost']).catch((error: unknown) => error),
      new Promise((resolve) => (bound = setTimeout(resolve, 10_000, 'still pending after 10 s'))),
    ]);
    clearTimeout(bound);
    expect(hangup).toMatchObject({ code: 'DEVPROXY_ERR_INTERNAL', message: 'the certificate worker stopped before answering (signal SIGKILL); the next request starts a new one' });
    expect(log).toContain('warn certificate worker closed its channel; stopping it');
    await waitFor(async () => ((await workerProcesses()).includes(pid as number) ? undefined : true), 10_000, 'the hung-up worker to be gone');
    expectSignedBy(await minter.issueLeafCertificate(ca, ['ui.feature-x.localhost']), ca, 'ui.feature-x.localhost');
    expect(started(log)).toBe(2);
  });
});
