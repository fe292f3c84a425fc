/**
 * `command:` services: `sh -c <command>` in the worktree, in its own process group (so that
 * stopping it reaches whatever the command spawned: npm → node → esbuild…), with PORT set to the
 * port devproxy allocated, output appended to `$DEVPROXY_HOME/logs/<slug>-<service>.log`. The pids
 * are persisted in `$DEVPROXY_HOME/processes.json` so that a restarted daemon finds and can stop
 * the processes the previous one started (they outlive it on purpose: a daemon restart must not
 * restart every dev server).
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makePrivateDir, openPrivateLog } from '../private-files.js';
import { promisify } from 'node:util';
import { readJsonState, writeJsonState } from './json-state.js';
import { lastLines } from './compose.js';
import { readLogTail } from './log-file.js';
import { sleep } from './health.js';
import { nodeOptionsWithPreload } from '../environment/node-options.js';
import { homePaths, serviceLogPath } from '../home-paths.js';

const execFileAsync = promisify(execFile);

/** How often a process that is not our child (adopted after a daemon restart) is checked for exit. */
const ADOPTED_POLL_MS = 1_000;

/** What is persisted about one running process. */
export interface ProcessRecord {
  worktreePath: string;
  slug: string;
  service: string;
  /** Pid of `sh`, also the process group id (it leads its own group). */
  pid: number;
  port: number;
  command: string;
  logFile: string;
  /** Size of the log file when this run started: its own lines start there. */
  logOffset: number;
  /** Start time of the pid in clock ticks since boot (Linux), to tell a reused pid from ours. */
  startTicks?: number;
  startedAt: string;
}

/** How a process ended. */
export interface ProcessExit {
  record: ProcessRecord;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Options of {@link ProcessSupervisor}. */
export interface ProcessSupervisorOptions {
  /** $DEVPROXY_HOME. */
  home: string;
  /** A supervised process ended (on its own or stopped). */
  onExit?: (exit: ProcessExit) => void;
}

/** What to start. */
export interface StartProcessOptions {
  worktreePath: string;
  slug: string;
  service: string;
  command: string;
  port: number;
  /** Folder to run in, relative to `worktreePath` (absent: the worktree root). */
  cwd?: string;
  /** Extra environment on top of the daemon's (PORT wins over it). */
  env?: Record<string, string>;
}

/** Starts, tracks and stops process groups; state persisted in processes.json. */
export class ProcessSupervisor {
  private readonly file: string;
  private readonly logsDir: string;
  private readonly opts: ProcessSupervisorOptions;
  private readonly records = new Map<string, ProcessRecord>();
  private readonly exited = new Map<number, Promise<void>>();
  private readonly pollers = new Map<number, AbortController>();
  private persistQueue: Promise<unknown> = Promise.resolve();

  constructor(opts: ProcessSupervisorOptions) {
    this.opts = opts;
    this.file = homePaths(opts.home).processes;
    this.logsDir = homePaths(opts.home).logs;
  }

  /** The log file of a worktree's service. */
  logFile(slug: string, service: string): string {
    return serviceLogPath(this.opts.home, slug, service);
  }

  /**
   * Re-attaches to the processes a previous daemon left running (from processes.json); those
   * that are gone are forgotten. Answers the ones still alive.
   */
  async adopt(): Promise<ProcessRecord[]> {
    const state = await readJsonState<{ processes?: ProcessRecord[] }>(this.file, {});
    const alive: ProcessRecord[] = [];
    for (const record of state.processes ?? []) {
      const key = keyOf(record.worktreePath, record.service);
      if (this.records.has(key)) {
        alive.push(this.records.get(key)!);
        continue;
      }
      if (!isSameProcess(record)) continue;
      this.records.set(key, record);
      this.pollExit(record);
      alive.push(record);
    }
    await this.persist();
    return alive;
  }

  /** Tracked processes, optionally of one worktree only. */
  list(worktreePath?: string): ProcessRecord[] {
    return [...this.records.values()].filter((r) => worktreePath === undefined || r.worktreePath === worktreePath);
  }

  /** Spawns the command detached in its own group and persists it; exit is reported via onExit. */
  async start(opts: StartProcessOptions): Promise<ProcessRecord> {
    await this.stop(opts.worktreePath, opts.service, 0);
    const cwd = opts.cwd ? join(opts.worktreePath, opts.cwd) : opts.worktreePath;
    // spawn would only say `spawn sh ENOENT` for a missing folder.
    if (!(await stat(cwd).then((s) => s.isDirectory(), () => false))) throw new Error(`its cwd ${opts.cwd ?? '.'} is not a folder of the worktree (${cwd}); fix \`cwd:\` in devproxy.yaml, or add the folder`);
    const logFile = this.logFile(opts.slug, opts.service);
    await makePrivateDir(this.logsDir);
    const fd = openPrivateLog(logFile);
    let logOffset = 0;
    try {
      writeSync(fd, `--- devproxy: ${new Date().toISOString()} starting \`${opts.command}\` with PORT=${opts.port}\n`);
      // This run's own lines start after the header.
      logOffset = (await stat(logFile)).size;
      const child = spawn('sh', ['-c', opts.command], {
        cwd,
        // Node apps resolve the worktree's *.localhost names through the preload.
        env: { ...process.env, ...(opts.env ?? {}), NODE_OPTIONS: nodeOptionsWithPreload(opts.env?.NODE_OPTIONS ?? process.env.NODE_OPTIONS), PORT: String(opts.port) },
        detached: true,
        stdio: ['ignore', fd, fd],
      });
      // The record exists only once the spawn succeeded, and the caller learns it only when
      // start() returns: an exit before then is reported right after (a command that fails at
      // once must not be missed).
      let record: ProcessRecord | undefined;
      let returned = false;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      const report = (): void => {
        if (!record || !exit) return;
        this.forget(record);
        this.opts.onExit?.({ record, ...exit });
      };
      const exited = new Promise<void>((resolve) => {
        child.once('exit', (code, signal) => {
          exit = { code, signal };
          if (returned) report();
          resolve();
        });
      });
      const pid = await new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid!));
        child.once('error', reject);
      });
      record = {
        worktreePath: opts.worktreePath,
        slug: opts.slug,
        service: opts.service,
        pid,
        port: opts.port,
        command: opts.command,
        logFile,
        logOffset,
        startedAt: new Date().toISOString(),
      };
      const ticks = startTicksOf(pid);
      if (ticks !== undefined) record.startTicks = ticks;
      this.records.set(keyOf(opts.worktreePath, opts.service), record);
      this.exited.set(pid, exited);
      child.unref();
      await this.persist();
      returned = true;
      // setImmediate: after the caller's `await start()` continuation has stored the record.
      if (exit) setImmediate(report);
      return record;
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Stops a service's process group: SIGTERM to the group, SIGKILL after `graceMs`. Resolves
   * once no process of the group is left. Unknown services are a no-op.
   */
  async stop(worktreePath: string, service: string, graceMs: number): Promise<void> {
    const record = this.records.get(keyOf(worktreePath, service));
    if (!record) return;
    signalGroup(record.pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (groupAlive(record.pid) && Date.now() < deadline) await sleep(50);
    if (groupAlive(record.pid)) signalGroup(record.pid, 'SIGKILL');
    // SIGKILL is not instant: wait (bounded) until the kernel has reaped the group.
    for (let i = 0; i < 100 && groupAlive(record.pid); i++) await sleep(20);
    await this.exited.get(record.pid);
    this.forget(record);
    await this.persist();
  }

  /** Whether the process of a record still runs (tracked, and its group alive right now). */
  isRunning(record: ProcessRecord): boolean {
    return this.records.get(keyOf(record.worktreePath, record.service))?.pid === record.pid && groupAlive(record.pid);
  }

  /** Resident memory of the process group and all descendants, in bytes (0 when gone). */
  async memoryBytes(record: ProcessRecord): Promise<number> {
    const table = await processTable();
    const members = new Set(treeOf(table, record.pid));
    return table.filter((p) => members.has(p.pid)).reduce((sum, p) => sum + p.rssBytes, 0);
  }

  /** The last `n` lines this run of the process wrote (not those of earlier runs). */
  async lastLogLines(record: Pick<ProcessRecord, 'logFile' | 'logOffset'>, n: number): Promise<string[]> {
    return lastLines((await readLogTail(record.logFile, record.logOffset)).text, n);
  }

  /** Stops watching adopted processes (the processes themselves keep running). */
  close(): void {
    for (const poller of this.pollers.values()) poller.abort();
    this.pollers.clear();
  }

  private pollExit(record: ProcessRecord): void {
    const controller = new AbortController();
    this.pollers.set(record.pid, controller);
    this.exited.set(
      record.pid,
      (async () => {
        while (!controller.signal.aborted && groupAlive(record.pid)) await sleep(ADOPTED_POLL_MS, controller.signal);
        if (controller.signal.aborted) return;
        this.forget(record);
        this.opts.onExit?.({ record, code: null, signal: null });
      })(),
    );
  }

  private forget(record: ProcessRecord): void {
    const key = keyOf(record.worktreePath, record.service);
    if (this.records.get(key) === record) this.records.delete(key);
    this.pollers.get(record.pid)?.abort();
    this.pollers.delete(record.pid);
  }

  private persist(): Promise<void> {
    const run = this.persistQueue.then(() => writeJsonState(this.file, { processes: [...this.records.values()] }));
    this.persistQueue = run.catch(() => undefined);
    return run;
  }
}

function keyOf(worktreePath: string, service: string): string {
  return `${worktreePath}\0${service}`;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** True while any process of the group exists (zombies included until reaped). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function startTicksOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); the command name (field 2) may contain spaces, so split after ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

function isSameProcess(record: ProcessRecord): boolean {
  if (!groupAlive(record.pid)) return false;
  if (record.startTicks === undefined) return true;
  const now = startTicksOf(record.pid);
  // The leader may have exited while its group lives on; only a different live process with
  // our pid means the pid was reused.
  return now === undefined || now === record.startTicks;
}

/** Pids of a process group led by `pgid` and of all its descendants (those in groups of their own too). */
export async function processTreePids(pgid: number): Promise<number[]> {
  return treeOf(await processTable(), pgid);
}

function treeOf(table: ProcessRow[], pgid: number): number[] {
  const members = new Set<number>();
  for (const p of table) if (p.pgid === pgid || p.pid === pgid) members.add(p.pid);
  // Descendants that started their own group or session still count: walk ppid links.
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of table) {
      if (!members.has(p.pid) && members.has(p.ppid)) {
        members.add(p.pid);
        grew = true;
      }
    }
  }
  return [...members];
}

interface ProcessRow {
  pid: number;
  ppid: number;
  pgid: number;
  rssBytes: number;
}

async function processTable(): Promise<ProcessRow[]> {
  if (existsSync('/proc/self/stat')) return procTable();
  // macOS and other systems without /proc.
  const { stdout } = await execFileAsync('ps', ['-A', '-o', 'pid=,ppid=,pgid=,rss=']);
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 4 && f.every((n) => Number.isFinite(n)))
    .map(([pid, ppid, pgid, rss]) => ({ pid: pid!, ppid: ppid!, pgid: pgid!, rssBytes: rss! * 1024 }));
}

function procTable(): ProcessRow[] {
  const rows: ProcessRow[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      const rss = /VmRSS:\s+(\d+)\s+kB/.exec(status);
      rows.push({
        pid: Number(entry),
        ppid: Number(fields[1]),
        pgid: Number(fields[2]),
        rssBytes: rss ? Number(rss[1]) * 1024 : 0,
      });
    } catch {
      // The process exited while we were reading.
    }
  }
  return rows;
}
