import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { worktreeEnvironment } from '../../environment/worktree-env.js';
import { formatDiagnostic, type ProjectConfig } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { LocalRuntime } from '../../runtime/local-runtime.js';
import { parsePortRange } from '../../runtime/ports.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, type TempRepo } from '../helpers/git-repo.js';
import { send, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';

/**
 * A process service calling another service by its stable URL: the real local runtime starts a
 * `command:` service with the worktree environment the daemon passes (the runtime adds the
 * *.localhost preload to NODE_OPTIONS), and its plain `fetch(process.env.API_URL)` goes through
 * the real daemon, which routes it by the live profile.
 */
let home: string;
let runtimeHome: string;
let scratch: string;
let repo: TempRepo;
let localApi: Upstream;
let remoteApi: Upstream;
let env: NodeJS.ProcessEnv;
let ports: { httpPort: number; httpsPort: number | null };
let runtime: LocalRuntime | undefined;

const cli = (args: string[]) => runCli(args, { cwd: repo.main, env });

/** The routed services, as in the repository's devproxy.yaml. */
const routed = () => ({
  api: { local: { port: localApi.port }, remote: `http://127.0.0.1:${remoteApi.port}` },
});

function config(services: Record<string, unknown>): ProjectConfig {
  const result = validateConfig(JSON.stringify({ name: 'contoso', services, profiles: { minimal: [], standard: ['api'] }, default: 'standard' }), 'devproxy.yaml');
  if (!result.config) throw new Error(result.errors.map(formatDiagnostic).join('\n'));
  return result.config;
}

/** An app server on $PORT that answers with what it fetched from API_URL. */
const CALLER = `
import { createServer } from 'node:http';
createServer(async (_req, res) => {
  try {
    res.end('caller saw: ' + (await (await fetch(process.env.API_URL + '/items')).text()));
  } catch (error) {
    res.statusCode = 502;
    res.end(String(error.cause?.code ?? error));
  }
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

/** The body a local instance answers on 127.0.0.1:<port>. */
async function get(port: number): Promise<string> {
  return (await send(port, `127.0.0.1:${port}`)).body;
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-envrt-home-'));
  runtimeHome = await mkdtemp(join(tmpdir(), 'devproxy-envrt-runtime-'));
  scratch = await mkdtemp(join(tmpdir(), 'devproxy-envrt-scratch-'));
  localApi = await startHttpUpstream((_req, res) => res.end('api local'));
  remoteApi = await startHttpUpstream((_req, res) => res.end('api remote'));
  // The daemon routes only `api`; the caller is run by the runtime under test, not the daemon's.
  repo = await createTempRepo({ 'devproxy.yaml': JSON.stringify({ name: 'contoso', services: routed(), profiles: { minimal: [], standard: ['api'] }, default: 'standard' }) });
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
  expect((await cli(['init'])).code).toBe(0);
  const started = await cli(['proxy', 'start', '--json']);
  expect(started.code, started.stderr).toBe(0);
  ports = JSON.parse(started.stdout) as { httpPort: number; httpsPort: number | null };
});

afterAll(async () => {
  if (runtime) {
    for (const path of runtime.worktreePaths()) await runtime.removeWorktree(path);
    await runtime.close();
  }
  await cli(['proxy', 'stop', '--all']);
  await Promise.all([localApi.close(), remoteApi.close()]);
  await repo.cleanup();
  for (const dir of [home, runtimeHome, scratch]) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('a process service started with the worktree environment', () => {
  it('calls another service by its stable URL and is routed local, then remote after a flip, without a restart', async () => {
    const script = join(scratch, 'caller.mjs');
    await writeFile(script, CALLER);
    const withCaller = config({ ...routed(), caller: { local: { command: `exec "${process.execPath}" "${script}"` } } });
    const inputs = { config: withCaller, slug: 'contoso', local: ['api', 'caller'], httpPort: ports.httpPort, httpsPort: null, caPath: null };
    // This worker's port range (test/setup/worker-ports.ts), like the daemons: files run side by side.
    runtime = new LocalRuntime({ home: runtimeHome, drainMs: 0, memoryIntervalMs: 0, startTimeoutMs: 30_000, dockerHost: `unix://${join(runtimeHome, 'no-docker.sock')}`, portRange: parsePortRange(process.env.DEVPROXY_LOCAL_PORTS!) });
    await runtime.reconcile({ repo: repo.main, path: repo.main, slug: 'contoso', config: withCaller, local: ['caller'], env: worktreeEnvironment(inputs, { env: {}, baseDir: repo.main }) });
    const port = runtime.healthyPorts(repo.main).get('caller')!;
    const pid = runtime.status(repo.main).find((s) => s.service === 'caller')!.pid;

    expect(await get(port)).toBe('caller saw: api local');
    const flipped = await cli(['use', 'minimal']);
    expect(flipped.code, flipped.stderr).toBe(0);
    expect(await get(port)).toBe('caller saw: api remote');
    expect(runtime.status(repo.main).find((s) => s.service === 'caller')!.pid).toBe(pid);
  });
});
