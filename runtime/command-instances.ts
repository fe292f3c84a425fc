/**
 * The processes job of the runtime: the `command:` services of each worktree as running
 * instances. It gives each its port (fixed, or kept in ports.json), starts it through the
 * process supervisor, fails it with the cause from its own output when it exits, stops it, and
 * adopts the processes a previous daemon left running. Process groups, processes.json and log
 * files are processes.ts.
 */
import type { LocalDefinition, ProjectConfig } from '../profiles/schema.js';
import { processExitDetail } from './events.js';
import { healthCheckFor } from './health.js';
import { CAUSE_SCAN_LINES, FAILED_LOG_LINES, isRunning, markFailed, type Instance } from './instance.js';
import { isPortFree, type PortAllocator } from './ports.js';
import { ProcessSupervisor, type ProcessExit, type ProcessRecord } from './processes.js';

/** The worktree a process operation is about. */
export interface CommandWorktree {
  /** Worktree root. */
  path: string;
  slug: string;
  config: ProjectConfig;
  /** Extra environment for the processes (PORT is set here). */
  env?: Record<string, string>;
}

/** Options of {@link CommandInstances}. */
export interface CommandInstancesOptions {
  /** $DEVPROXY_HOME: processes.json and logs/ live there. */
  home: string;
  ports: PortAllocator;
  /** SIGTERM → SIGKILL grace when stopping (ms). */
  stopGraceMs: number;
  /** A supervised process ended (on its own or stopped). */
  onExit: (exit: ProcessExit) => void;
  /** An instance's state changed. */
  changed: () => void;
}

/** `command:` processes of every worktree. */
export class CommandInstances {
  private readonly supervisor: ProcessSupervisor;
  private adoptedRecords: Promise<ProcessRecord[]> | undefined;

  constructor(private readonly opts: CommandInstancesOptions) {
    this.supervisor = new ProcessSupervisor({ home: opts.home, onExit: opts.onExit });
  }

  /** Instances for the worktree's processes that a previous daemon left running (read once per runtime). */
  async adopt(wt: Pick<CommandWorktree, 'path' | 'config'>): Promise<Instance[]> {
    return (await this.adopted())
      .filter((record) => record.worktreePath === wt.path)
      .map((record) => ({
        service: record.service,
        kind: 'command' as const,
        state: 'starting' as const,
        check: healthCheckFor(wt.config.services.get(record.service)?.health, 'tcp'),
        port: record.port,
        process: record,
      }));
  }

  /**
   * Starts the process of `inst` on its port: `local.port` when the config fixes one, else the
   * one kept for the service in ports.json (a stranger on it fails the instance, naming the
   * fix). Any failure to start marks the instance failed.
   */
  async start(wt: CommandWorktree, inst: Instance, local: Extract<LocalDefinition, { kind: 'command' }>): Promise<void> {
    try {
      const port = local.port ?? (await this.opts.ports.allocate(wt.path, inst.service));
      inst.port = port;
      if (local.port === undefined && !(await isPortFree(port))) {
        this.fail(inst, `port ${port}, kept for ${inst.service} in ports.json, is in use by another program: stop it (\`lsof -i :${port}\` names it)`, []);
        return;
      }
      const startOpts: Parameters<ProcessSupervisor['start']>[0] = { worktreePath: wt.path, slug: wt.slug, service: inst.service, command: local.command, port, ...(local.cwd ? { cwd: local.cwd } : {}) };
      if (wt.env) startOpts.env = wt.env;
      inst.process = await this.supervisor.start(startOpts);
    } catch (error) {
      this.fail(inst, `could not start \`${local.command}\`: ${error instanceof Error ? error.message : String(error)}`, []);
    }
  }

  /** Whether the instance's process still runs (a draining one that exited cannot be kept). */
  isAlive(inst: Instance): boolean {
    return inst.process !== undefined && this.supervisor.isRunning(inst.process);
  }

  /**
   * Fails the running instance whose process ended, with its last lines and the cause found in
   * them; `isCurrent` says whether it is still its worktree's instance once the log is read.
   */
  failExited(inst: Instance, exit: ProcessExit, isCurrent: () => boolean): void {
    if (inst.process?.pid !== exit.record.pid || !isRunning(inst)) return;
    const detail = processExitDetail(exit.record.command, exit.code, exit.signal);
    void this.supervisor.lastLogLines(exit.record, CAUSE_SCAN_LINES).then(
      (lines) => {
        if (isCurrent() && isRunning(inst)) this.fail(inst, detail, lines.slice(-FAILED_LOG_LINES), lines);
      },
      () => this.fail(inst, detail, []),
    );
  }

  /** Stops the service's process group (SIGTERM, then SIGKILL after the grace). */
  stop(worktreePath: string, service: string): Promise<void> {
    return this.supervisor.stop(worktreePath, service, this.opts.stopGraceMs);
  }

  /** Stops every process of the worktree, those an earlier daemon started too. */
  async sweep(worktreePath: string): Promise<void> {
    await this.adopted();
    for (const record of this.supervisor.list(worktreePath)) await this.stop(worktreePath, record.service);
  }

  /** The log file of a worktree's service. */
  logFile(slug: string, service: string): string {
    return this.supervisor.logFile(slug, service);
  }

  /** The last `n` lines this run of the process wrote. */
  lastLogLines(record: ProcessRecord, n: number): Promise<string[]> {
    return this.supervisor.lastLogLines(record, n);
  }

  /** Resident memory of the process tree, in bytes. */
  memoryBytes(record: ProcessRecord): Promise<number> {
    return this.supervisor.memoryBytes(record);
  }

  /** Stops watching adopted processes (the processes keep running). */
  close(): void {
    this.supervisor.close();
  }

  private adopted(): Promise<ProcessRecord[]> {
    this.adoptedRecords ??= this.supervisor.adopt();
    return this.adoptedRecords;
  }

  private fail(inst: Instance, detail: string, lines: string[], scanned: string[] = lines): void {
    markFailed(inst, detail, lines, scanned);
    this.opts.changed();
  }
}
