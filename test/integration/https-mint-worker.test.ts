import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MINT_WORKER_IDLE_MS } from '../../certs/mint-worker-client.js';
import { homePaths } from '../../home-paths.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';
import { startHttpUpstream, type Upstream } from '../helpers/upstreams.js';

/**
 * A real daemon (from dist/) minting its certificates in the worker process: new names are served
 * over HTTPS with leaves the client verifies against the daemon's CA, and the worker stops once
 * idle (the daemon log says so) and starts again for the next new name.
 */
let home: string;
let repo: TempRepo;
let ui: Upstream;
let api: Upstream;
let env: NodeJS.ProcessEnv;
let httpsPort: number;

const cli = (args: string[], cwd = repo.main) => runCli(args, { cwd, env });
const daemonLog = () => readFile(homePaths(home).daemonLog, 'utf8').catch(() => '');
const count = (text: string, line: string) => text.split('\n').filter((l) => l.endsWith(line)).length;
const STARTED = 'info  certificate worker started';
const STOPPED = `info  certificate worker stopped after ${MINT_WORKER_IDLE_MS} ms idle`;

/** GET over HTTPS to the daemon with SNI `name`, verifying its certificate against the daemon's CA only. */
async function httpsGet(name: string): Promise<{ status: number; body: string }> {
  const ca = await readFile(homePaths(home).caCert, 'utf8');
  return await new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', servername: name, port: httpsPort, path: '/', headers: { host: name }, ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Waits until every certificate worker the daemon log shows started has stopped; returns how many. */
const allWorkersStopped = (what: string) =>
  waitFor(
    async () => {
      const log = await daemonLog();
      const started = count(log, STARTED);
      return started > 0 && count(log, STOPPED) === started ? started : undefined;
    },
    30_000,
    what,
  );

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-mint-home-'));
  ui = await startHttpUpstream((req, res) => res.end(`hello ${req.headers.host}`));
  api = await startHttpUpstream((req, res) => res.end(`hello ${req.headers.host}`));
  repo = await createTempRepo({
    'devproxy.yaml': `name: contoso\nservices:\n  ui:\n    local: { port: ${ui.port} }\n  api:\n    local: { port: ${api.port} }\nprofiles:\n  all: [ui, api]\ndefault: all\n`,
  });
  repo.addWorktree('feature/alpha');
  repo.addWorktree('feature/beta');
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
  expect((await cli(['init'])).code).toBe(0);
  const started = await cli(['proxy', 'start', '--json']);
  expect(started.code, started.stderr).toBe(0);
  httpsPort = (JSON.parse(started.stdout) as { httpsPort: number }).httpsPort;
});

afterAll(async () => {
  await cli(['proxy', 'stop', '--all']);
  await Promise.all([ui.close(), api.close()]);
  await repo.cleanup();
  await rm(home, { recursive: true, force: true });
});

describe('the daemon mints its certificates in a worker process', () => {
  it('serves HTTPS for new names with leaves signed by its CA, and the worker stops once idle', async () => {
    // The HTTPS listener's localhost leaf (and the CA before it) were minted at start.
    expect(await daemonLog()).toContain('created the devproxy CA');
    const names = ['ui.contoso.localhost', 'api.alpha.localhost', 'ui.beta.localhost'];
    const answers = await Promise.all(names.map((name) => httpsGet(name)));
    expect(answers).toEqual(names.map((name) => ({ status: 200, body: `hello ${name}` })));
    const log = await daemonLog();
    for (const leaf of ['*.contoso.localhost', '*.alpha.localhost', '*.beta.localhost']) expect(log).toMatch(new RegExp(`issued certificate for \\${leaf}`));

    const idle = await allWorkersStopped('the idle certificate worker to stop');
    // A name minted before is served from memory: no worker starts for it.
    expect(await httpsGet('api.contoso.localhost')).toEqual({ status: 200, body: 'hello api.contoso.localhost' });
    expect(count(await daemonLog(), STARTED)).toBe(idle);

    // A worktree added later gets its leaf from a new worker, which stops again once idle.
    repo.addWorktree('feature/gamma');
    await waitFor(async () => ((await httpsGet('ui.gamma.localhost').catch(() => undefined))?.status === 200 ? true : undefined), 30_000, 'gamma to be served');
    expect(await daemonLog()).toMatch(/issued certificate for \*\.gamma\.localhost/);
    expect(count(await daemonLog(), STARTED)).toBe(idle + 1);
    expect(await allWorkersStopped('the second certificate worker to stop')).toBe(idle + 1);
    expect(await daemonLog()).not.toMatch(/certificate worker died/);
  });
});
