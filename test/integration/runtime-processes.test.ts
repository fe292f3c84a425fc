/**
 * `command:` and `port:` services of the local runtime: real processes in their own process
 * groups, real sockets on 127.0.0.1. No Docker needed (the runtime must not touch it here).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatDiagnostic, type ProjectConfig } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { LocalRuntime, type WorktreeRuntimeSpec } from '../../runtime/local-runtime.js';
import { PORT_RANGE_END, PORT_RANGE_START } from '../../runtime/ports.js';
import { send } from '../helpers/upstreams.js';

/** A node HTTP server on $PORT that answers `<name> <PORT> <GREETING>` and logs when it listens. */
function nodeServer(name: string): string {
  const js = `require('http').createServer((q,s)=>s.end('${name} '+process.env.PORT+' '+(process.env.GREETING||''))).listen(Number(process.env.PORT),'127.0.0.1',()=>console.log('${name} listening on '+process.env.PORT))`;
  return `exec "${process.execPath}" -e "${js}"`;
}

/** The project's devproxy.yaml (JSON is YAML), through the real validator; `extra` adds services. */
function config(extra: Record<string, unknown> = {}): ProjectConfig {
  const text = JSON.stringify({
    name: 'proc-test',
    services: {
      web: { local: { command: nodeServer('web') } },
      api: { local: { command: nodeServer('api') }, health: '/' },
      // The shell forks a child that ignores SIGTERM: stop must still reach the whole group.
      stubborn: { local: { command: `trap '' TERM; (trap '' TERM; sleep 600) & ${nodeServer('stubborn').replace('exec ', '')}` } },
      broken: { local: { command: 'echo "loading config"; echo "fatal: missing API_KEY" >&2; exit 3' } },
      ...extra,
    },
    profiles: { minimal: ['web'] },
    default: 'minimal',
  });
  const result = validateConfig(text, 'devproxy.yaml');
  if (!result.config) throw new Error(result.errors.map(formatDiagnostic).join('\n'));
  return result.config;
}

/** The body a local instance answers on 127.0.0.1:<port>. */
async function get(port: number): Promise<string> {
  return (await send(port, `127.0.0.1:${port}`)).body;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

let home: string;
let worktreeDir: string;
const runtimes: LocalRuntime[] = [];
const servers: Server[] = [];

function runtime(extra: Partial<ConstructorParameters<typeof LocalRuntime>[0]> = {}): LocalRuntime {
  // A Docker host nobody answers on: these services must never need the engine.
  const rt = new LocalRuntime({ home, drainMs: 0, stopGraceMs: 1_000, startTimeoutMs: 30_000, memoryIntervalMs: 0, dockerHost: `unix://${join(home, 'no-docker.sock')}`, ...extra });
  runtimes.push(rt);
  return rt;
}

function spec(local: string[], extra: Partial<WorktreeRuntimeSpec> = {}): WorktreeRuntimeSpec {
  return { repo: worktreeDir, path: worktreeDir, slug: 'feat', config: config(), local, ...extra };
}

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-proc-home-'));
  worktreeDir = await mkdtemp(join(tmpdir(), 'devproxy-proc-wt-'));
});

afterEach(async () => {
  for (const rt of runtimes.splice(0)) {
    for (const path of rt.worktreePaths()) await rt.removeWorktree(path);
    await rt.close();
  }
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  await rm(home, { recursive: true, force: true });
  await rm(worktreeDir, { recursive: true, force: true });
}, 60_000);

describe('LocalRuntime with command services', () => {
  it('injects the allocated PORT and extra env, captures output in the log file, routes when healthy', async () => {
    const rt = runtime();
    const progress: string[] = [];
    const t0 = Date.now();
    const plan = await rt.reconcile(spec(['web', 'api'], { env: { GREETING: 'hi' } }), { onProgress: (s, state) => progress.push(`${s}:${state}`) });
    console.info(`process start → healthy (2 node servers): ${Date.now() - t0} ms`);
    expect(plan).toEqual({ start: ['web', 'api'], stop: [], keep: [] });
    expect(progress.sort()).toEqual(['api:healthy', 'api:starting', 'web:healthy', 'web:starting']);
    const ports = rt.healthyPorts(worktreeDir);
    const web = ports.get('web')!;
    const api = ports.get('api')!;
    expect(web).not.toBe(api);
    for (const p of [web, api]) {
      expect(p).toBeGreaterThanOrEqual(PORT_RANGE_START);
      expect(p).toBeLessThanOrEqual(PORT_RANGE_END);
    }
    expect(await get(web)).toBe(`web ${web} hi`);
    expect(await get(api)).toBe(`api ${api} hi`);

    const logFile = join(home, 'logs', 'feat-web.log');
    await expect.poll(async () => readFile(logFile, 'utf8'), { timeout: 5_000 }).toContain(`web listening on ${web}`);
    expect(await rt.logs(worktreeDir, 'web', { lines: 1 })).toBe(`web listening on ${web}`);
    const persisted = JSON.parse(await readFile(join(home, 'ports.json'), 'utf8')) as { ports: Record<string, number> };
    expect(Object.values(persisted.ports).sort()).toEqual([web, api].sort());
  });

  it('keeps the same port for a worktree service across a stop and a start', async () => {
    const rt = runtime();
    await rt.reconcile(spec(['web']));
    const first = rt.healthyPorts(worktreeDir).get('web');
    await rt.reconcile(spec([]));
    expect(rt.status(worktreeDir)).toEqual([]);
    await rt.reconcile(spec(['web']));
    expect(rt.healthyPorts(worktreeDir).get('web')).toBe(first);
  });

  it('stops the whole process group, SIGKILL after the grace period for children that ignore SIGTERM', async () => {
    const rt = runtime();
    await rt.reconcile(spec(['stubborn', 'web']));
    const [status] = rt.status(worktreeDir).filter((s) => s.service === 'stubborn');
    expect(status!.state).toBe('healthy');
    const pgid = status!.pid!;
    expect(groupAlive(pgid)).toBe(true);
    const plan = await rt.reconcile(spec(['web']));
    expect(plan).toEqual({ start: [], stop: ['stubborn'], keep: ['web'] });
    expect(groupAlive(pgid)).toBe(false);
    const processes = JSON.parse(await readFile(join(home, 'processes.json'), 'utf8')) as { processes: Array<{ service: string }> };
    expect(processes.processes.map((p) => p.service)).toEqual(['web']);
  });

  it('a process that exits at once is failed with its last log lines', async () => {
    const rt = runtime();
    const progress: string[] = [];
    await rt.reconcile(spec(['broken']), { onProgress: (s, state, detail) => progress.push(`${s}:${state}${detail ? `: ${detail}` : ''}`) });
    expect(progress).toEqual(['broken:starting', expect.stringMatching(/^broken:failed: `echo .*` exited with code 3$/)]);
    const [status] = rt.status(worktreeDir);
    expect(status).toMatchObject({ service: 'broken', kind: 'command', state: 'failed' });
    expect(status!.lastLogLines).toEqual(['loading config', 'fatal: missing API_KEY']);
    expect(rt.healthyPorts(worktreeDir).size).toBe(0);
  });

  it('a process killed from outside turns failed and calls onChange', async () => {
    let changes = 0;
    const rt = runtime({ onChange: () => changes++ });
    await rt.reconcile(spec(['web']));
    const pid = rt.status(worktreeDir)[0]!.pid!;
    const before = changes;
    process.kill(-pid, 'SIGKILL');
    await expect.poll(() => rt.status(worktreeDir)[0]?.state, { timeout: 10_000 }).toBe('failed');
    expect(changes).toBeGreaterThan(before);
    expect(rt.status(worktreeDir)[0]!.detail).toContain('was killed by SIGKILL');
    expect(rt.healthyPorts(worktreeDir).size).toBe(0);
  });

  it('reports the resident memory of the process tree', async () => {
    const rt = runtime();
    await rt.reconcile(spec(['web']));
    await rt.refreshMemory();
    const [status] = rt.status(worktreeDir);
    console.info(`node server process tree RSS: ${status!.memoryBytes} bytes`);
    // A node process is tens of MB resident; far below a GB.
    expect(status!.memoryBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(status!.memoryBytes).toBeLessThan(1024 * 1024 * 1024);
  });

  it('a restarted runtime adopts running processes (same pid) and can stop them', async () => {
    const first = runtime();
    await first.reconcile(spec(['web']));
    const pid = first.status(worktreeDir)[0]!.pid!;
    await first.close();

    const second = runtime();
    expect(await second.reconcile(spec(['web']))).toEqual({ start: [], stop: [], keep: ['web'] });
    expect(second.status(worktreeDir)[0]!.pid).toBe(pid);
    await expect.poll(() => second.status(worktreeDir)[0]?.state, { timeout: 10_000 }).toBe('healthy');
    await second.removeWorktree(worktreeDir);
    expect(groupAlive(pid)).toBe(false);
  });

  it('follows a log file as the process writes', async () => {
    // It never listens: give up waiting for health after a second, the output is what matters.
    const rt = runtime({ startTimeoutMs: 1_000 });
    const cfg = config({ ticker: { local: { command: 'i=0; while [ $i -lt 50 ]; do echo "tick $i"; i=$((i+1)); sleep 0.1; done; sleep 60' } } });
    await rt.reconcile(spec(['ticker'], { config: cfg }));
    const controller = new AbortController();
    let seen = '';
    for await (const chunk of rt.followLogs(worktreeDir, 'ticker', { lines: 1, signal: controller.signal })) {
      seen += chunk;
      if ([...seen.matchAll(/tick \d+\n/g)].length >= 3) controller.abort();
    }
    // The last line written, then the next ones as they come: consecutive, not a replay of the log.
    const ticks = [...seen.matchAll(/tick (\d+)\n/g)].map((m) => Number(m[1]));
    expect(ticks.slice(0, 3)).toEqual([ticks[0]!, ticks[0]! + 1, ticks[0]! + 2]);
    expect(ticks[0]).toBeGreaterThan(0);
  });
});

describe('LocalRuntime switches', () => {
  it('serialises reconciles of one worktree: concurrent calls end in the last one\'s state', async () => {
    const rt = runtime();
    const plans = await Promise.all([rt.reconcile(spec(['web'])), rt.reconcile(spec(['api'])), rt.reconcile(spec(['web', 'api']))]);
    expect(plans).toEqual([
      { start: ['web'], stop: [], keep: [] },
      { start: ['api'], stop: ['web'], keep: [] },
      { start: ['web'], stop: [], keep: ['api'] },
    ]);
    expect(rt.status(worktreeDir).map((s) => `${s.service}:${s.state}`).sort()).toEqual(['api:healthy', 'web:healthy']);
  });

  it('a switch back to local inside the drain keeps the draining process and its port; the drain ends then', async () => {
    // A drain far longer than the test: only keeping the instance can end the first reconcile early.
    const rt = runtime({ drainMs: 600_000, healthIntervalMs: 20 });
    await rt.reconcile(spec(['web']));
    const [before] = rt.status(worktreeDir);
    const away = rt.reconcile(spec([]));
    await expect.poll(() => rt.status(worktreeDir)[0]?.state, { timeout: 10_000 }).toBe('stopping');
    expect(rt.healthyPorts(worktreeDir).size).toBe(0);
    expect(await rt.reconcile(spec(['web']))).toEqual({ start: [], stop: [], keep: ['web'] });
    expect(await away).toEqual({ start: [], stop: ['web'], keep: [] });
    const [after] = rt.status(worktreeDir);
    expect(after).toMatchObject({ state: 'healthy', pid: before!.pid, port: before!.port });
    expect(rt.healthyPorts(worktreeDir).get('web')).toBe(before!.port);
    expect(await get(before!.port!)).toBe(`web ${before!.port} `);
    expect(groupAlive(before!.pid!)).toBe(true);
  });

  it('a draining process that died meanwhile is replaced by a new one on the same port', async () => {
    const rt = runtime({ drainMs: 600_000, healthIntervalMs: 20 });
    await rt.reconcile(spec(['web']));
    const [before] = rt.status(worktreeDir);
    const away = rt.reconcile(spec([]));
    await expect.poll(() => rt.status(worktreeDir)[0]?.state, { timeout: 10_000 }).toBe('stopping');
    process.kill(-before!.pid!, 'SIGKILL');
    await expect.poll(() => groupAlive(before!.pid!), { timeout: 10_000 }).toBe(false);
    expect(await rt.reconcile(spec(['web']))).toEqual({ start: ['web'], stop: [], keep: [] });
    await away;
    const [after] = rt.status(worktreeDir);
    expect(after).toMatchObject({ state: 'healthy', port: before!.port });
    expect(after!.pid).not.toBe(before!.pid);
  });

  it('healthyPorts only ever lists instances that answer while a service flips local → remote → local', async () => {
    // The drain covers a client that read the port just before the flip: a second on a busy machine.
    const rt = runtime({ drainMs: 1_000, healthIntervalMs: 20 });
    let stop = false;
    let served = 0;
    const failures: string[] = [];
    // What the proxy does: read the port at request time, send one request there.
    const client = (async () => {
      for (let i = 0; i < 5_000 && !stop; i++) {
        const port = rt.healthyPorts(worktreeDir).get('web');
        if (port === undefined) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        try {
          await get(port);
          served++;
        } catch (error) {
          failures.push(`${port}: ${(error as Error).message}`);
        }
      }
    })();
    for (let flip = 0; flip < 3; flip++) {
      await rt.reconcile(spec(['web']));
      await new Promise((r) => setTimeout(r, 100));
      await rt.reconcile(spec([]));
    }
    stop = true;
    await client;
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(0);
  }, 60_000);

  it('a switch away from a service that is still starting is not held up by its health wait', async () => {
    // It would wait ten minutes for health; the test's own timeout is far shorter.
    const rt = runtime({ startTimeoutMs: 600_000 });
    const cfg = config({ sleeper: { local: { command: 'echo "warming up"; exec sleep 600' } } });
    const progress: string[] = [];
    const starting = rt.reconcile(spec(['sleeper'], { config: cfg }), { onProgress: (s, state) => progress.push(`${s}:${state}`) });
    await expect.poll(() => rt.status(worktreeDir)[0]?.pid, { timeout: 10_000 }).toBeDefined();
    const pid = rt.status(worktreeDir)[0]!.pid!;
    expect(await rt.reconcile(spec([], { config: cfg }))).toEqual({ start: [], stop: ['sleeper'], keep: [] });
    await starting;
    expect(progress[0]).toBe('sleeper:starting');
    expect(progress).not.toContain('sleeper:healthy');
    expect(groupAlive(pid)).toBe(false);
    expect(rt.status(worktreeDir)).toEqual([]);
  }, 30_000);

  it('a dry run answers at once even while a reconcile is waiting for health', async () => {
    const rt = runtime({ startTimeoutMs: 600_000 });
    const cfg = config({ sleeper: { local: { command: 'exec sleep 600' } } });
    await rt.reconcile(spec([], { config: cfg }));
    const starting = rt.reconcile(spec(['sleeper'], { config: cfg }));
    await expect.poll(() => rt.status(worktreeDir)[0]?.state, { timeout: 10_000 }).toBe('starting');
    expect(await rt.reconcile(spec(['web'], { config: cfg }), { dryRun: true })).toEqual({ start: ['web'], stop: ['sleeper'], keep: [] });
    await rt.reconcile(spec([], { config: cfg }));
    await starting;
  }, 30_000);

  it('restart gives a command service a new process on the same port', async () => {
    const rt = runtime();
    await rt.reconcile(spec(['web']));
    const before = rt.status(worktreeDir)[0]!;
    await rt.restart(worktreeDir, 'web');
    const after = rt.status(worktreeDir)[0]!;
    expect(after.pid).not.toBe(before.pid);
    expect(after.port).toBe(before.port);
    expect(after.state).toBe('healthy');
    expect(groupAlive(before.pid!)).toBe(false);
    expect(await get(after.port!)).toBe(`web ${after.port} `);
  });

  it('restart of a worktree the runtime does not know is a clear error', async () => {
    const error = await runtime().restart('/nowhere', 'web').catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('DEVPROXY_ERR_UNKNOWN_WORKTREE');
  });
});

describe('LocalRuntime with port services', () => {
  it('routes to a user-run server only while it answers its health check', async () => {
    const server = createServer((_, res) => res.end('mine'));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const rt = runtime({ healthIntervalMs: 50 });
    const cfg = config({ own: { local: { port }, health: '/' } });
    await rt.reconcile(spec(['own'], { config: cfg }));
    expect(rt.healthyPorts(worktreeDir).get('own')).toBe(port);
    expect(rt.status(worktreeDir)[0]).toMatchObject({ kind: 'port', state: 'healthy', port });
  });

  it('a user-run service that is not up yet is unhealthy, then healthy once it listens', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const rt = runtime({ healthIntervalMs: 50 });
    const cfg = config({ own: { local: { port } } });
    await rt.reconcile(spec(['own'], { config: cfg }));
    expect(rt.status(worktreeDir)[0]).toMatchObject({ state: 'unhealthy' });
    expect(rt.healthyPorts(worktreeDir).size).toBe(0);
    const server = createServer((_, res) => res.end('late'));
    servers.push(server);
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    await expect.poll(() => rt.healthyPorts(worktreeDir).get('own'), { timeout: 10_000 }).toBe(port);
  });
});
