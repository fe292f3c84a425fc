/**
 * The local runtime the daemon drives: per worktree, it makes the set of running local
 * instances (compose containers, `command:` processes, user-run `port:` services) equal to the
 * set the profile names, touching only the services that change, and reports each instance's
 * state, host port and memory. Routing is not its business: the daemon asks `healthyPorts()`
 * (healthy instances only, so a switch to local keeps the remote until the local one answers)
 * and rebuilds its table whenever `onChange` fires.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DevproxyError } from '../errors.js';
import type { LocalDefinition, ProjectConfig, ServiceConfig } from '../profiles/schema.js';
import type { ProxyLogger } from '../proxy/types.js';
import {
  assertComposeService,
  composeProjectDirectory,
  composeProjectName,
  composeUp,
  deriveComposeDocument,
  findComposeFile,
  lastLines,
  readComposeFile,
  usesHostNetwork,
  writeDerivedComposeFile,
  type ComposeFile,
  type ComposeServicePlan,
} from './compose.js';
import { DockerObserver, type OwnedContainerEvent } from './docker-observer.js';
import { healthCheckFor, PROBE_TIMEOUT_MS, sleep, waitHealthy, type HealthCheck } from './health.js';
import { readLogTail } from './log-file.js';
import { listeningPorts, portMismatchMessage } from './listening-ports.js';
import { causeLines } from './failure-cause.js';
import { DEFAULT_HEALTH_TIMEOUT_MS } from '../profiles/validate-config.js';
import { planReconcile, type ReconcilePlan } from './plan.js';
import { isPortFree, PortAllocator } from './ports.js';
import { ProcessSupervisor, type ProcessExit, type ProcessRecord } from './processes.js';

/** The start/stop/keep lists a reconcile executes (re-exported for the daemon). */
export type { ReconcilePlan } from './plan.js';

/** Lines of output kept with a failed instance. */
export const FAILED_LOG_LINES = 20;
/** Lines of a failed process's output searched for its cause (help text can bury the error line). */
const CAUSE_SCAN_LINES = 400;

/** How often a followed log file is checked for new output. */
const FOLLOW_POLL_MS = 250;

/** How often a starting process's listening ports are read while its PORT does not answer. */
const PORT_SCAN_INTERVAL_MS = 1_000;
/**
 * How long a process may listen elsewhere but not on PORT before that is its verdict: a dev
 * server sometimes opens a side port (HMR, inspector) a moment before its main one.
 */
const PORT_MISMATCH_GRACE_MS = 3_000;

/** Lifecycle of one local instance. */
export type LocalServiceState = 'starting' | 'healthy' | 'unhealthy' | 'failed' | 'stopping' | 'stopped';

/** What `status` reports for one local instance of a worktree. */
export interface LocalServiceStatus {
  service: string;
  kind: LocalDefinition['kind'];
  state: LocalServiceState;
  /** Host port on 127.0.0.1 (known once the instance is up). */
  port?: number;
  /** Memory in use (Docker stats, or RSS of the process tree), from the last refresh. */
  memoryBytes?: number;
  /** Why it is failed/unhealthy, or what it is waiting for. */
  detail?: string;
  /** The instance's last output lines, kept when it failed. */
  lastLogLines?: string[];
  /** The lines of its output that say what went wrong (see causeLines), kept when it failed or never got healthy. */
  cause?: string[];
  /** Container id, for compose services. */
  containerId?: string;
  /** Process group id, for command services. */
  pid?: number;
}

/** One worktree as the daemon describes it to the runtime. */
export interface WorktreeRuntimeSpec {
  /** Main checkout path of the repository. */
  repo: string;
  /** Worktree root (compose file and commands are resolved against it). */
  path: string;
  /** Worktree slug (compose project suffix, log file prefix). */
  slug: string;
  config: ProjectConfig;
  /** Services that should run locally now. */
  local: string[];
  /** Extra environment for every local instance (PORT is set by the runtime). */
  env?: Record<string, string>;
}

/** Options of one reconcile. */
export interface ReconcileOptions {
  /** Compute and return the plan, change nothing. */
  dryRun?: boolean;
  /** Progress per service: starting → healthy | unhealthy | failed; stopping → stopped. */
  onProgress?: (service: string, state: LocalServiceState, detail?: string) => void;
  /** Wait this long (ms) before stopping services that leave, so in-flight requests finish; default the runtime's drainMs. */
  drainMs?: number;
}

/** Options of {@link LocalRuntime}. */
export interface LocalRuntimeOptions {
  /** $DEVPROXY_HOME: ports.json, processes.json, logs/, compose/ live there. */
  home: string;
  logger?: ProxyLogger;
  /** Any state or port changed, or Docker came or went: the daemon rebuilds its routing table. */
  onChange?: () => void;
  /** DOCKER_HOST for dockerode and the Compose CLI; default DOCKER_HOST, else the system socket, else Docker Desktop's. */
  dockerHost?: string;
  /** Default drain before stopping a service that left (ms); default 2000. */
  drainMs?: number;
  /** How long a started instance may take to become healthy before it is reported unhealthy (ms), unless its `health.timeout` says; default 60 000. */
  startTimeoutMs?: number;
  /** Pause between health probes while waiting (ms); default 250. */
  healthIntervalMs?: number;
  /** SIGTERM → SIGKILL grace when stopping (ms; whole seconds for containers); default 5000. */
  stopGraceMs?: number;
  /** Memory figures are refreshed this often (ms); 0 refreshes only on `refreshMemory()`. Default 10 000. */
  memoryIntervalMs?: number;
  /** Range local ports are allocated from; default 41000-48999 (`DEVPROXY_LOCAL_PORTS`). */
  portRange?: { start: number; end: number };
}

interface Instance {
  service: string;
  kind: LocalDefinition['kind'];
  state: LocalServiceState;
  check: HealthCheck;
  port?: number;
  containerId?: string;
  containerPort?: number;
  hostNetwork?: boolean;
  process?: ProcessRecord;
  memoryBytes?: number;
  detail?: string;
  lastLogLines?: string[];
  cause?: string[];
  /** Set when Docker reported an OOM kill, so the following die says why. */
  oomKilled?: boolean;
  /** Aborts the health watch (on stop, failure, close). */
  watch?: AbortController;
  /** Set while it drains before its stop; a switch back to local within the drain keeps the instance. */
  drain?: AbortController;
  /** The stop under way (stops are idempotent: a second caller awaits the first). */
  stopping?: Promise<void>;
}

interface WorktreeRuntime {
  spec: WorktreeRuntimeSpec;
  projectName: string;
  instances: Map<string, Instance>;
  adopted: boolean;
  queue: Promise<unknown>;
}

const RUNNING_STATES: ReadonlySet<LocalServiceState> = new Set(['starting', 'healthy', 'unhealthy']);

/** Local compose containers, processes and user-run ports of every worktree. */
export class LocalRuntime {
  private readonly opts: Required<Omit<LocalRuntimeOptions, 'logger' | 'onChange' | 'dockerHost' | 'portRange'>> & LocalRuntimeOptions;
  private readonly worktrees = new Map<string, WorktreeRuntime>();
  private readonly ports: PortAllocator;
  private readonly supervisor: ProcessSupervisor;
  private readonly observer: DockerObserver;
  private adoptedProcesses: Promise<ProcessRecord[]> | undefined;
  private memoryTimer: NodeJS.Timeout | undefined;
  private memoryRefresh: Promise<void> | undefined;
  private closed = false;
  /** Aborted by close(): queued drains end at once, the proxy has already drained by then. */
  private readonly closing = new AbortController();
  /** Drains and stops of services that left, running outside their worktree's queue. */
  private readonly leaving = new Set<Promise<void>>();

  constructor(opts: LocalRuntimeOptions) {
    this.opts = { drainMs: 2_000, startTimeoutMs: DEFAULT_HEALTH_TIMEOUT_MS, healthIntervalMs: 250, stopGraceMs: 5_000, memoryIntervalMs: 10_000, ...opts };
    this.ports = new PortAllocator({ home: opts.home, ...(opts.portRange ? { range: opts.portRange } : {}) });
    this.supervisor = new ProcessSupervisor({ home: opts.home, onExit: (exit) => this.onProcessExit(exit) });
    const observerOpts: ConstructorParameters<typeof DockerObserver>[0] = {
      onEvent: (event) => this.onContainerEvent(event),
      onAvailability: (available) => this.onDockerAvailability(available),
    };
    if (opts.dockerHost !== undefined) observerOpts.dockerHost = opts.dockerHost;
    if (opts.logger) observerOpts.logger = opts.logger;
    this.observer = new DockerObserver(observerOpts);
    if (this.opts.memoryIntervalMs > 0) {
      this.memoryTimer = setInterval(() => void this.refreshMemory(), this.opts.memoryIntervalMs);
      this.memoryTimer.unref();
    }
  }

  /**
   * Where containers reach the host (Docker's `host-gateway` address), once Docker has been
   * needed and answered; undefined before, or when the engine and the bridge interface do not say.
   */
  async hostGateway(): Promise<string | undefined> {
    if (this.observer.available !== true) return undefined;
    return this.observer.hostGateway().catch(() => undefined);
  }

  /** Whether the Docker engine answered last time it was needed; undefined before any need. */
  get dockerAvailable(): boolean | undefined {
    return this.observer.available;
  }

  /**
   * Starts the services of `spec.local` that are not running and stops (after the drain) those
   * running that are not in it; instances that stay local are not touched. Waits until every
   * started instance is healthy, failed, or past `startTimeoutMs` (then unhealthy, still watched).
   * Throws, before changing anything, on an unknown service, a missing compose file or service,
   * or Docker being unreachable when a compose service must start.
   */
  async reconcile(spec: WorktreeRuntimeSpec, opts: ReconcileOptions = {}): Promise<ReconcilePlan> {
    const known = this.worktrees.get(spec.path);
    if (opts.dryRun && known?.adopted) {
      // A plan reads state only: it need not queue behind a reconcile that is starting services.
      for (const name of spec.local) localDefinitionOf(spec.config, name);
      return planReconcile(spec.local, runningServices(known));
    }
    const { plan, started, stops } = await this.serialise(spec, async (wt) => {
      const definitions = new Map(spec.local.map((name) => [name, localDefinitionOf(spec.config, name)] as const));
      const needsDocker = [...definitions.values()].some((d) => d.local.kind === 'compose');
      if (!wt.adopted) await this.adopt(wt, needsDocker);
      const planned = planReconcile(spec.local, runningServices(wt));
      if (opts.dryRun) return { plan: planned, started: { verdicts: Promise.resolve() }, stops: Promise.resolve() };

      const composeStarts = planned.start.filter((s) => definitions.get(s)?.local.kind === 'compose');
      let composeFile: ComposeFile | undefined;
      if (composeStarts.length > 0) {
        composeFile = await readComposeFile(findComposeFile(spec.path, spec.config.compose));
        for (const s of composeStarts) {
          const local = definitions.get(s)!.local as Extract<LocalDefinition, { kind: 'compose' }>;
          assertComposeService(composeFile, local.compose, s);
        }
        await this.ensureDocker();
      }

      // Switched back to local within the drain: keep the running instance (and its port).
      const keptVerdicts: Array<Promise<void>> = [];
      for (const inst of planned.keep.map((s) => wt.instances.get(s)!).filter((i) => i.drain !== undefined)) {
        if (await this.keepDraining(wt, inst)) keptVerdicts.push(this.watchHealth(wt, inst).then(() => opts.onProgress?.(inst.service, inst.state, inst.detail)));
      }
      const plan = planReconcile(spec.local, runningServices(wt));
      // An instance that is being stopped goes first: the new one needs its port.
      await Promise.all(plan.start.map((s) => wt.instances.get(s)?.stopping?.catch(() => undefined)));

      const desired = new Set(spec.local);
      // Failed leftovers nobody wants any more: remove them without a drain (nothing routes there).
      const leftovers = [...wt.instances.values()].filter((i) => !desired.has(i.service) && !RUNNING_STATES.has(i.state) && i.drain === undefined);
      const leaving = plan.stop.map((s) => wt.instances.get(s)!).filter((i) => i !== undefined && i.drain === undefined);
      for (const inst of leaving) this.beginStop(inst, opts);
      if (leaving.length > 0) this.changed();
      const drainMs = opts.drainMs ?? this.opts.drainMs;
      const stops = this.trackLeaving(Promise.all([...leftovers.map((i) => this.stopInstance(wt, i)), ...leaving.map((inst) => this.drainThenStop(wt, inst, drainMs, opts))]).then(() => undefined));
      const started = await this.startServices(wt, plan.start, composeFile, opts);
      return { plan, started: { verdicts: Promise.all([started.verdicts, ...keptVerdicts]).then(() => undefined) }, stops };
    });
    await Promise.all([started.verdicts, stops]);
    return plan;
  }

  /** Host ports of the worktree's healthy local instances (service → port). */
  healthyPorts(worktreePath: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const inst of this.worktrees.get(worktreePath)?.instances.values() ?? []) {
      if (inst.state === 'healthy' && inst.port !== undefined) out.set(inst.service, inst.port);
    }
    return out;
  }

  /** Every local instance of a worktree with its state, port and memory. */
  status(worktreePath: string): LocalServiceStatus[] {
    return [...(this.worktrees.get(worktreePath)?.instances.values() ?? [])].map(toStatus);
  }

  /** Paths of the worktrees the runtime currently tracks. */
  worktreePaths(): string[] {
    return [...this.worktrees.keys()];
  }

  /** Stops a service's instance and starts it again (a new container / process), waiting until healthy or failed. */
  restart(worktreePath: string, service: string, opts: Pick<ReconcileOptions, 'onProgress'> = {}): Promise<void> {
    const wt = this.worktrees.get(worktreePath);
    if (!wt) return Promise.reject(unknownWorktree(worktreePath));
    return this.serialise(wt.spec, async (w) => {
      const def = localDefinitionOf(w.spec.config, service);
      let composeFile: ComposeFile | undefined;
      if (def.local.kind === 'compose') {
        composeFile = await readComposeFile(findComposeFile(w.spec.path, w.spec.config.compose));
        assertComposeService(composeFile, def.local.compose, service);
        await this.ensureDocker();
      }
      const inst = w.instances.get(service);
      if (inst) {
        endDrain(inst);
        this.beginStop(inst, opts);
        this.changed();
        await this.stopInstance(w, inst);
      }
      return this.startServices(w, [service], composeFile, opts);
    }).then(({ verdicts }) => verdicts);
  }

  /** The last `lines` lines (default 100) a service wrote: its log file, or its container's logs. */
  async logs(worktreePath: string, service: string, opts: { lines?: number } = {}): Promise<string> {
    const lines = opts.lines ?? 100;
    const source = await this.logSource(worktreePath, service);
    if (source.kind === 'file') return lastLines((await readLogTail(source.file)).text, lines).join('\n');
    return (await this.observer.lastLogLines(source.containerId, lines)).join('\n');
  }

  /**
   * Follows a service's output: first its last `lines` lines, then new output as it comes,
   * until `signal` aborts (or the container stops).
   */
  async *followLogs(worktreePath: string, service: string, opts: { lines?: number; signal?: AbortSignal } = {}): AsyncIterable<string> {
    const lines = opts.lines ?? 100;
    const source = await this.logSource(worktreePath, service);
    if (source.kind === 'file') {
      const { text, size } = await readLogTail(source.file);
      const initial = lastLines(text, lines);
      if (initial.length > 0) yield `${initial.join('\n')}\n`;
      let offset = size;
      while (!opts.signal?.aborted) {
        await sleep(FOLLOW_POLL_MS, opts.signal);
        const next = await readLogTail(source.file, offset, Number.MAX_SAFE_INTEGER);
        // A restart truncates nothing (the file is appended to), so a shrink means rotation by hand.
        if (next.size < offset) offset = 0;
        else if (next.text.length > 0) {
          offset = next.size;
          yield next.text;
        }
      }
      return;
    }
    const out = await this.observer.followLogs(source.containerId, lines);
    const onAbort = (): void => {
      out.end();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const chunk of out) yield (chunk as Buffer).toString('utf8');
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      out.destroy();
    }
  }

  /** Stops and removes everything the worktree runs (containers, networks, processes) and forgets its ports. */
  removeWorktree(worktreePath: string): Promise<void> {
    return this.stopEverything(worktreePath, { releasePorts: true });
  }

  /**
   * Stops and removes everything the worktree runs, as `removeWorktree`, but keeps its ports in
   * ports.json (`devproxy down`: the same ports come back with `up`).
   */
  stopWorktree(worktreePath: string): Promise<void> {
    return this.stopEverything(worktreePath, { releasePorts: false });
  }

  private async stopEverything(worktreePath: string, opts: { releasePorts: boolean }): Promise<void> {
    const known = this.worktrees.get(worktreePath);
    const remove = async (wt: WorktreeRuntime | undefined): Promise<void> => {
      const instances = [...(wt?.instances.values() ?? [])];
      for (const inst of instances) {
        endDrain(inst);
        this.beginStop(inst, {});
      }
      if (instances.length > 0) this.changed();
      if (wt) await Promise.all(instances.map((inst) => this.stopInstance(wt, inst)));
      // Sweep what this process may not track: processes and containers of an earlier daemon.
      await this.adoptProcesses();
      for (const record of this.supervisor.list(worktreePath)) await this.supervisor.stop(worktreePath, record.service, this.opts.stopGraceMs);
      try {
        const containers = await this.observer.listOwned({ worktreePath });
        const projects = new Set(containers.map((c) => c.composeProject).filter((p): p is string => p !== undefined));
        if (wt) projects.add(wt.projectName);
        await Promise.all(containers.map((c) => this.observer.stopAndRemove(c.id, graceSeconds(this.opts.stopGraceMs))));
        for (const project of projects) {
          await this.observer.removeComposeNetworks(project);
          await rm(join(this.opts.home, 'compose', `${project}.compose.yaml`), { force: true });
        }
      } catch (error) {
        const dockerNeeded = instances.some((i) => i.kind === 'compose');
        if (dockerNeeded || !isConnectionError(error)) throw isConnectionError(error) ? this.observer.unavailableError(error) : error;
      }
      if (opts.releasePorts) await this.ports.releaseWorktree(worktreePath);
      this.worktrees.delete(worktreePath);
    };
    if (known) await this.serialise(known.spec, remove);
    else await remove(undefined);
    this.changed();
  }

  /**
   * Refreshes the memory figures of every running instance (Docker stats take about a second
   * each, in parallel). Runs on its own every `memoryIntervalMs`; never on the request path.
   */
  refreshMemory(): Promise<void> {
    this.memoryRefresh ??= (async () => {
      const jobs: Array<Promise<void>> = [];
      for (const wt of this.worktrees.values()) {
        for (const inst of wt.instances.values()) {
          if (!RUNNING_STATES.has(inst.state)) continue;
          if (inst.kind === 'compose' && inst.containerId) {
            const id = inst.containerId;
            jobs.push(this.observer.memoryBytes(id).then((m) => void (m !== undefined && inst.containerId === id && (inst.memoryBytes = m)), () => undefined));
          } else if (inst.kind === 'command' && inst.process) {
            const record = inst.process;
            jobs.push(this.supervisor.memoryBytes(record).then((m) => void (inst.process === record && (inst.memoryBytes = m)), () => undefined));
          }
        }
      }
      await Promise.all(jobs);
    })().finally(() => {
      this.memoryRefresh = undefined;
    });
    return this.memoryRefresh;
  }

  /**
   * Stops watching (health loops, Docker events, memory timer). Containers and processes keep
   * running: a restarted daemon adopts them instead of restarting every dev server.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    if (this.memoryTimer) clearInterval(this.memoryTimer);
    for (const wt of this.worktrees.values()) for (const inst of wt.instances.values()) inst.watch?.abort();
    this.observer.close();
    this.supervisor.close();
    await Promise.allSettled([...this.worktrees.values()].map((wt) => wt.queue));
    await Promise.allSettled([...this.leaving]);
    await this.memoryRefresh;
  }

  // ---- internals ----

  private serialise<T>(spec: WorktreeRuntimeSpec, fn: (wt: WorktreeRuntime) => Promise<T>): Promise<T> {
    let wt = this.worktrees.get(spec.path);
    if (!wt) {
      wt = { spec, projectName: composeProjectName(spec.config.name, spec.slug), instances: new Map(), adopted: false, queue: Promise.resolve() };
      this.worktrees.set(spec.path, wt);
    }
    const target = wt;
    // The spec is swapped only when this operation's turn comes: the one running keeps its own.
    const turn = (): Promise<T> => {
      target.spec = spec;
      target.projectName = composeProjectName(spec.config.name, spec.slug);
      return fn(target);
    };
    const run = target.queue.then(turn, turn);
    target.queue = run.catch(() => undefined);
    return run;
  }

  private changed(): void {
    if (this.closed) return;
    try {
      this.opts.onChange?.();
    } catch (error) {
      this.opts.logger?.error(`runtime: onChange failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private async ensureDocker(): Promise<void> {
    await this.observer.ensureAvailable();
    this.observer.watch();
  }

  private adoptProcesses(): Promise<ProcessRecord[]> {
    this.adoptedProcesses ??= this.supervisor.adopt();
    return this.adoptedProcesses;
  }

  /**
   * First contact with a worktree in this process: re-attach to the processes and containers a
   * previous daemon left running, so that they count as running (kept, not restarted).
   */
  private async adopt(wt: WorktreeRuntime, needsDocker: boolean): Promise<void> {
    for (const record of await this.adoptProcesses()) {
      if (record.worktreePath !== wt.spec.path || wt.instances.has(record.service)) continue;
      const svc = wt.spec.config.services.get(record.service);
      const inst: Instance = { service: record.service, kind: 'command', state: 'starting', check: healthCheckFor(svc?.health, 'tcp'), port: record.port, process: record };
      wt.instances.set(record.service, inst);
      void this.watchHealth(wt, inst);
    }
    let containers: Awaited<ReturnType<DockerObserver['listOwned']>> = [];
    try {
      containers = await this.observer.listOwned({ worktreePath: wt.spec.path });
      this.observer.watch();
    } catch (error) {
      // Docker is only a must when a compose service has to start; the ping records the
      // engine as unavailable and throws the error that says how to start it.
      if (needsDocker) {
        await this.ensureDocker();
        throw error;
      }
    }
    for (const c of containers) {
      if (c.state !== 'running' || wt.instances.has(c.service)) continue;
      const svc = wt.spec.config.services.get(c.service);
      const containerPort = svc?.local?.kind === 'compose' ? svc.local.port : undefined;
      const inst: Instance = { service: c.service, kind: 'compose', state: 'starting', check: healthCheckFor(svc?.health, 'http-any'), containerId: c.id };
      if (containerPort !== undefined) inst.containerPort = containerPort;
      wt.instances.set(c.service, inst);
      void this.watchHealth(wt, inst);
    }
    wt.adopted = true;
  }

  /**
   * Launches the services; answers (wrapped, so that awaiting the launch does not await it too)
   * the promise of their first health verdicts (see watchHealth).
   */
  private async startServices(wt: WorktreeRuntime, services: string[], composeFile: ComposeFile | undefined, opts: ReconcileOptions): Promise<{ verdicts: Promise<void> }> {
    if (services.length === 0) return { verdicts: Promise.resolve() };
    const spec = wt.spec;
    const started: Instance[] = [];
    const composeStarts: Array<{ inst: Instance; compose: string }> = [];
    for (const name of services) {
      const { service, local } = localDefinitionOf(spec.config, name);
      const inst: Instance = { service: name, kind: local.kind, state: 'starting', check: healthCheckFor(service.health, 'tcp') };
      wt.instances.set(name, inst);
      started.push(inst);
      opts.onProgress?.(name, 'starting');
      if (local.kind === 'port') {
        inst.port = local.port;
      } else if (local.kind === 'command') {
        try {
          const port = local.port ?? (await this.ports.allocate(spec.path, name));
          inst.port = port;
          if (local.port === undefined && !(await isPortFree(port))) {
            this.setFailed(inst, `port ${port}, kept for ${name} in ports.json, is in use by another program: stop it (\`lsof -i :${port}\` names it)`, []);
            continue;
          }
          const startOpts: Parameters<ProcessSupervisor['start']>[0] = { worktreePath: spec.path, slug: spec.slug, service: name, command: local.command, port, ...(local.cwd ? { cwd: local.cwd } : {}) };
          if (spec.env) startOpts.env = spec.env;
          inst.process = await this.supervisor.start(startOpts);
        } catch (error) {
          this.setFailed(inst, `could not start \`${local.command}\`: ${messageOf(error)}`, []);
        }
      } else {
        inst.containerPort = local.port;
        composeStarts.push({ inst, compose: local.compose });
      }
    }
    this.changed();
    if (composeStarts.length > 0 && composeFile) await this.composeStart(wt, composeFile, composeStarts);
    // The watches start now (a stop must be able to abort them); the caller awaits their first
    // verdict outside the worktree's lock, so that a switch away is not held up by a slow start.
    const verdicts = Promise.all(
      started.map(async (inst) => {
        if (inst.state === 'starting') {
          // A user-run port service gets one short window; if it is not up yet, it is watched in the background.
          await this.watchHealth(wt, inst, inst.kind === 'port' ? PROBE_TIMEOUT_MS : this.startTimeoutOf(spec.config, inst.service));
        }
        opts.onProgress?.(inst.service, inst.state, inst.detail);
      }),
    ).then(() => undefined);
    return { verdicts };
  }

  private async composeStart(wt: WorktreeRuntime, file: ComposeFile, starts: Array<{ inst: Instance; compose: string }>): Promise<void> {
    const spec = wt.spec;
    const managed = new Map<string, ComposeServicePlan>();
    const services = file.doc.services as Record<string, unknown>;
    for (const [name, svc] of spec.config.services) {
      if (svc.local?.kind !== 'compose' || !file.services.includes(svc.local.compose)) continue;
      const plan: ComposeServicePlan = { service: name, containerPort: svc.local.port };
      if (svc.memoryBytes !== undefined) plan.memoryBytes = svc.memoryBytes;
      if (usesHostNetwork(services[svc.local.compose])) {
        plan.hostPort = await this.ports.allocate(spec.path, name);
      }
      managed.set(svc.local.compose, plan);
    }
    for (const { inst, compose } of starts) {
      const hostPort = managed.get(compose)?.hostPort;
      if (hostPort !== undefined) {
        inst.hostNetwork = true;
        inst.port = hostPort;
        inst.check = healthCheckFor(spec.config.services.get(inst.service)?.health, 'tcp');
      } else {
        inst.check = healthCheckFor(spec.config.services.get(inst.service)?.health, 'http-any');
      }
    }
    const deriveOpts: Parameters<typeof deriveComposeDocument>[1] = { repo: spec.repo, worktreePath: spec.path, slug: spec.slug, managed, config: spec.config };
    if (spec.env) deriveOpts.env = spec.env;
    try {
      const derived = await writeDerivedComposeFile(this.opts.home, wt.projectName, deriveComposeDocument(file.doc, deriveOpts));
      const env = { ...process.env, DOCKER_HOST: this.observer.dockerHost };
      await composeUp({
        file: derived,
        projectName: wt.projectName,
        projectDirectory: composeProjectDirectory(file.path),
        services: starts.map((s) => s.compose),
        env,
      });
    } catch (error) {
      const lines = messageOf(error).split('\n');
      for (const { inst } of starts) this.setFailed(inst, lines[0] ?? 'compose failed', lines.slice(1));
      this.opts.logger?.error(`runtime: ${messageOf(error)}`);
      return;
    }
    await Promise.all(
      starts.map(async ({ inst }) => {
        const containers = await this.observer.listOwned({ worktreePath: spec.path, service: inst.service });
        const container = containers.find((c) => c.state === 'running') ?? containers[0];
        if (container) inst.containerId = container.id;
        else this.setFailed(inst, `compose reported success but no container of ${inst.service} exists`, []);
      }),
    );
  }

  /**
   * Probes until healthy. Resolves after the first verdict: healthy, failed, or (after
   * `timeoutMs`) unhealthy; in the last case the probing goes on in the background until the
   * instance answers or is stopped.
   */
  private async watchHealth(wt: WorktreeRuntime, inst: Instance, timeoutMs = this.startTimeoutOf(wt.spec.config, inst.service)): Promise<void> {
    inst.watch?.abort();
    const watch = new AbortController();
    inst.watch = watch;
    const port = async (): Promise<number | undefined> => {
      if (inst.kind !== 'compose' || inst.hostNetwork) return inst.port;
      if (!inst.containerId || inst.containerPort === undefined) return undefined;
      try {
        const found = await this.observer.hostPort(inst.containerId, inst.containerPort);
        if (!found.running) {
          // The die event may not have arrived (or the subscription was not open yet).
          if (found.oomKilled) inst.oomKilled = true;
          await this.failContainer(wt, inst, inst.containerId, found.exitCode);
          return undefined;
        }
        if (found.hostNetwork && inst.port === undefined) return undefined;
        if (found.port !== undefined && found.port !== inst.port) inst.port = found.port;
        return found.port;
      } catch {
        return undefined;
      }
    };
    const settle = (healthy: boolean): boolean => {
      if (watch.signal.aborted || wt.instances.get(inst.service) !== inst) return true;
      if (healthy) {
        inst.state = 'healthy';
        delete inst.detail;
        delete inst.lastLogLines;
        delete inst.cause;
        this.changed();
        return true;
      }
      return false;
    };
    // The first verdict also comes early when the process listens, but not on its PORT.
    const first = new AbortController();
    const endFirst = (): void => first.abort();
    watch.signal.addEventListener('abort', endFirst, { once: true });
    let mismatch: string | undefined;
    const scan = inst.process ? this.watchPortMismatch(inst, inst.process, first.signal).then((found) => void (found !== undefined && ((mismatch = found), first.abort()))) : undefined;
    const ok = await waitHealthy(inst.check, { port, timeoutMs, intervalMs: this.opts.healthIntervalMs, signal: first.signal });
    first.abort();
    watch.signal.removeEventListener('abort', endFirst);
    await scan;
    if (settle(ok)) return;
    if (mismatch === undefined && inst.process && !watch.signal.aborted) mismatch = await this.portMismatch(inst.service, inst.process);
    const lines = inst.process ? await this.supervisor.lastLogLines(inst.process, CAUSE_SCAN_LINES).catch((): string[] => []) : undefined;
    if (watch.signal.aborted || wt.instances.get(inst.service) !== inst || !RUNNING_STATES.has(inst.state)) return;
    inst.state = 'unhealthy';
    if (lines) {
      inst.lastLogLines = lines.slice(-FAILED_LOG_LINES);
      inst.cause = causeLines(lines);
    }
    inst.detail =
      mismatch ??
      (inst.port === undefined
        ? 'no host port yet'
        : `no healthy answer on 127.0.0.1:${inst.port} within ${Math.round(timeoutMs / 1000)} s (${describeCheck(inst.check)})${inst.process ? ', and it listens on no TCP port' : ''}: raise \`health: { timeout: … }\` if it starts slowly`);
    this.changed();
    void waitHealthy(inst.check, { port, timeoutMs: Number.MAX_SAFE_INTEGER, intervalMs: Math.max(1_000, this.opts.healthIntervalMs), signal: watch.signal }).then(settle);
  }

  /** The service's own `health.timeout`, else the runtime's default. */
  private startTimeoutOf(config: ProjectConfig, service: string): number {
    return config.services.get(service)?.healthTimeoutMs ?? this.opts.startTimeoutMs;
  }

  /** Why nothing answers on the process's PORT when it listens elsewhere; undefined when it does not. */
  private async portMismatch(service: string, record: ProcessRecord): Promise<string | undefined> {
    const ports = await listeningPorts(record.pid).catch((): number[] => []);
    return ports.length > 0 && !ports.includes(record.port) ? portMismatchMessage(service, record.command, ports, record.port) : undefined;
  }

  /** Resolves with the mismatch once it has lasted PORT_MISMATCH_GRACE_MS, or undefined when `signal` ends the watch. */
  private async watchPortMismatch(inst: Instance, record: ProcessRecord, signal: AbortSignal): Promise<string | undefined> {
    let since: number | undefined;
    while (!signal.aborted) {
      await sleep(PORT_SCAN_INTERVAL_MS, signal);
      if (signal.aborted || inst.process !== record) return undefined;
      const found = await this.portMismatch(inst.service, record);
      if (found === undefined) since = undefined;
      else if (since === undefined) since = Date.now();
      else if (Date.now() - since >= PORT_MISMATCH_GRACE_MS) return found;
    }
    return undefined;
  }

  private beginStop(inst: Instance, opts: Pick<ReconcileOptions, 'onProgress'>): void {
    inst.watch?.abort();
    inst.state = 'stopping';
    opts.onProgress?.(inst.service, 'stopping');
  }

  /**
   * Waits out the drain (in-flight requests finish on the old target), then stops the instance,
   * unless a switch back to local kept it meanwhile. close() ends every drain at once.
   */
  private async drainThenStop(wt: WorktreeRuntime, inst: Instance, drainMs: number, opts: Pick<ReconcileOptions, 'onProgress'>): Promise<void> {
    const drain = new AbortController();
    inst.drain = drain;
    const onClose = (): void => drain.abort();
    this.closing.signal.addEventListener('abort', onClose, { once: true });
    await sleep(drainMs, drain.signal);
    this.closing.signal.removeEventListener('abort', onClose);
    if (inst.drain !== drain) return;
    delete inst.drain;
    await this.stopInstance(wt, inst);
    opts.onProgress?.(inst.service, 'stopped');
  }

  /**
   * Takes a draining instance back: its stop is cancelled and it routes again once it answers
   * its health check (the caller watches it). A process that exited meanwhile cannot be kept: it
   * is stopped now (false), so that the reconcile starts a new one.
   */
  private async keepDraining(wt: WorktreeRuntime, inst: Instance): Promise<boolean> {
    endDrain(inst);
    if (inst.kind === 'command' && (!inst.process || !this.supervisor.isRunning(inst.process))) {
      await this.stopInstance(wt, inst);
      return false;
    }
    inst.state = 'starting';
    this.changed();
    return true;
  }

  private trackLeaving(work: Promise<void>): Promise<void> {
    const tracked = work.finally(() => this.leaving.delete(tracked));
    this.leaving.add(tracked);
    tracked.catch((error: unknown) => this.opts.logger?.error(`runtime: stopping failed: ${messageOf(error)}`));
    return tracked;
  }

  private stopInstance(wt: WorktreeRuntime, inst: Instance): Promise<void> {
    inst.stopping ??= this.stopNow(wt, inst);
    return inst.stopping;
  }

  private async stopNow(wt: WorktreeRuntime, inst: Instance): Promise<void> {
    inst.watch?.abort();
    inst.state = 'stopping';
    if (inst.kind === 'command') {
      await this.supervisor.stop(wt.spec.path, inst.service, this.opts.stopGraceMs);
    } else if (inst.kind === 'compose') {
      try {
        const containers = await this.observer.listOwned({ worktreePath: wt.spec.path, service: inst.service });
        await Promise.all(containers.map((c) => this.observer.stopAndRemove(c.id, graceSeconds(this.opts.stopGraceMs))));
      } catch (error) {
        if (!isConnectionError(error)) throw error;
        // A down engine has stopped its containers already; the stopped ones are removed by
        // the next start of the service or by removeWorktree.
        this.opts.logger?.warn(`runtime: Docker is not reachable; ${inst.service} of ${wt.spec.slug} counts as stopped`);
      }
    }
    inst.state = 'stopped';
    if (wt.instances.get(inst.service) === inst) wt.instances.delete(inst.service);
    this.changed();
  }

  private setFailed(inst: Instance, detail: string, lines: string[], scanned: string[] = lines): void {
    inst.watch?.abort();
    inst.state = 'failed';
    inst.detail = detail;
    inst.lastLogLines = lines;
    inst.cause = causeLines(scanned);
    this.changed();
  }

  private onProcessExit(exit: ProcessExit): void {
    const wt = this.worktrees.get(exit.record.worktreePath);
    const inst = wt?.instances.get(exit.record.service);
    if (!inst || inst.process?.pid !== exit.record.pid || !RUNNING_STATES.has(inst.state)) return;
    const how = exit.signal ? `was killed by ${exit.signal}` : exit.code === null ? 'exited' : `exited with code ${exit.code}`;
    void this.supervisor.lastLogLines(exit.record, CAUSE_SCAN_LINES).then(
      (lines) => {
        if (wt!.instances.get(inst.service) === inst && RUNNING_STATES.has(inst.state)) this.setFailed(inst, `\`${exit.record.command}\` ${how}`, lines.slice(-FAILED_LOG_LINES), lines);
      },
      () => this.setFailed(inst, `\`${exit.record.command}\` ${how}`, []),
    );
  }

  private onContainerEvent(event: OwnedContainerEvent): void {
    const wt = this.worktrees.get(event.worktreePath);
    const inst = wt?.instances.get(event.service);
    if (!wt || !inst || inst.kind !== 'compose' || inst.containerId !== event.containerId) return;
    if (event.action === 'oom') {
      inst.oomKilled = true;
    } else if (event.action === 'die') {
      if (RUNNING_STATES.has(inst.state)) void this.failContainer(wt, inst, event.containerId, event.exitCode);
    } else if (event.action === 'start') {
      // A restart policy brought it back: watch it become healthy again.
      if (inst.state === 'failed') {
        inst.state = 'starting';
        delete inst.lastLogLines;
        this.changed();
        void this.watchHealth(wt, inst);
      }
    } else if (event.action === 'health_status') {
      if (event.health === 'unhealthy' && inst.state === 'healthy') {
        inst.state = 'unhealthy';
        inst.detail = 'the container\'s own health check reports unhealthy';
        this.changed();
      } else if (event.health === 'healthy' && inst.state === 'unhealthy' && inst.port !== undefined) {
        inst.state = 'healthy';
        delete inst.detail;
        this.changed();
      }
    }
  }

  private async failContainer(wt: WorktreeRuntime, inst: Instance, containerId: string, exitCode: number | undefined): Promise<void> {
    let lines: string[] = [];
    try {
      lines = await this.observer.lastLogLines(containerId, FAILED_LOG_LINES);
    } catch {
      // Removed meanwhile, or the engine is gone: fail without lines.
    }
    if (wt.instances.get(inst.service) !== inst || !RUNNING_STATES.has(inst.state) || inst.containerId !== containerId) return;
    const limit = inst.oomKilled ? ' (out of memory: raise `memory:` of the service in devproxy.yaml)' : '';
    const code = exitCode === undefined ? '' : ` with code ${exitCode}`;
    this.setFailed(inst, `container exited${code}${limit}`, lines);
  }

  private onDockerAvailability(available: boolean): void {
    // Status shows the engine's availability, so a change is a change even with no instance.
    this.changed();
    if (!available) {
      for (const wt of this.worktrees.values()) {
        for (const inst of wt.instances.values()) {
          if (inst.kind === 'compose' && RUNNING_STATES.has(inst.state)) this.setFailed(inst, 'the Docker engine is not reachable', []);
        }
      }
      return;
    }
    void this.resync();
  }

  /** After the engine came back: instances whose container runs again are watched back to healthy. */
  private async resync(): Promise<void> {
    for (const wt of this.worktrees.values()) {
      const candidates = [...wt.instances.values()].filter((i) => i.kind === 'compose' && i.state === 'failed' && i.detail === 'the Docker engine is not reachable');
      if (candidates.length === 0) continue;
      let containers: Awaited<ReturnType<DockerObserver['listOwned']>>;
      try {
        containers = await this.observer.listOwned({ worktreePath: wt.spec.path });
      } catch {
        return;
      }
      for (const inst of candidates) {
        const c = containers.find((x) => x.id === inst.containerId && x.state === 'running');
        if (!c) continue;
        inst.state = 'starting';
        delete inst.detail;
        void this.watchHealth(wt, inst);
      }
      this.changed();
    }
  }

  private async logSource(worktreePath: string, service: string): Promise<{ kind: 'file'; file: string } | { kind: 'container'; containerId: string }> {
    const wt = this.worktrees.get(worktreePath);
    const inst = wt?.instances.get(service);
    const local = wt?.spec.config.services.get(service)?.local;
    const kind = inst?.kind ?? local?.kind;
    if (kind === 'port') {
      throw new DevproxyError('DEVPROXY_ERR_USAGE', `${service} runs outside devproxy (local port ${local?.kind === 'port' ? local.port : '?'}); it has no logs here`, {
        hint: 'read its output where you started it',
      });
    }
    if (kind === 'command' || inst?.process) {
      const slug = inst?.process?.slug ?? wt?.spec.slug;
      if (!slug) throw unknownWorktree(worktreePath);
      return { kind: 'file', file: inst?.process?.logFile ?? this.supervisor.logFile(slug, service) };
    }
    const containerId = inst?.containerId ?? (await this.ensureDocker().then(() => this.observer.listOwned({ worktreePath, service })))[0]?.id;
    if (!containerId) {
      throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_SERVICE', `${service} has no local instance in ${worktreePath}`, {
        hint: 'make it local with `devproxy use <profile>` first',
      });
    }
    return { kind: 'container', containerId };
  }
}

/** Services with a live instance: running, or draining (a switch back keeps those). */
function runningServices(wt: WorktreeRuntime): string[] {
  return [...wt.instances.values()].filter((i) => RUNNING_STATES.has(i.state) || i.drain !== undefined).map((i) => i.service);
}

/** Cancels an instance's drain: it is kept, or stopped at once by the caller. */
function endDrain(inst: Instance): void {
  const drain = inst.drain;
  delete inst.drain;
  drain?.abort();
}

function localDefinitionOf(config: ProjectConfig, name: string): { service: ServiceConfig; local: LocalDefinition } {
  const service = config.services.get(name);
  if (!service) {
    throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_SERVICE', `service "${name}" is not defined in devproxy.yaml (known: ${[...config.services.keys()].join(', ')})`);
  }
  if (!service.local) {
    throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_SERVICE', `service "${name}" has no \`local:\` definition, so it cannot run locally`, {
      hint: `add \`local:\` (compose, command or port) to services.${name} in devproxy.yaml, or keep it remote`,
    });
  }
  return { service, local: service.local };
}

function toStatus(inst: Instance): LocalServiceStatus {
  const s: LocalServiceStatus = { service: inst.service, kind: inst.kind, state: inst.state };
  if (inst.port !== undefined) s.port = inst.port;
  if (inst.memoryBytes !== undefined) s.memoryBytes = inst.memoryBytes;
  if (inst.detail !== undefined) s.detail = inst.detail;
  if (inst.lastLogLines !== undefined) s.lastLogLines = [...inst.lastLogLines];
  if (inst.cause !== undefined) s.cause = [...inst.cause];
  if (inst.containerId !== undefined) s.containerId = inst.containerId;
  if (inst.process !== undefined) s.pid = inst.process.pid;
  return s;
}

function describeCheck(check: HealthCheck): string {
  if (check.kind === 'http') return `GET ${check.path}`;
  if (check.kind === 'http-any') return 'any HTTP answer';
  return 'TCP connect';
}

function graceSeconds(ms: number): number {
  return Math.ceil(ms / 1000);
}

function unknownWorktree(path: string): DevproxyError {
  return new DevproxyError('DEVPROXY_ERR_UNKNOWN_WORKTREE', `the runtime has no local services for ${path}`);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES' || code === 'ETIMEDOUT';
}
