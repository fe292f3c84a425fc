/**
 * The local runtime the daemon drives: per worktree, it makes the set of running local
 * instances (compose containers, `command:` processes, user-run `port:` services) equal to the
 * set the profile names, touching only the services that change, and reports each instance's
 * state, host port and memory. Routing is not its business: the daemon asks `healthyPorts()`
 * (healthy instances only, so a switch to local keeps the remote until the local one answers)
 * and rebuilds its table whenever `onChange` fires.
 *
 * This class coordinates; each job lives in its own module: the plan (plan.ts), the instance
 * record (instance.ts), compose containers (compose-instances.ts), processes
 * (command-instances.ts), health watching (health-watch.ts), events in and out (events.ts),
 * memory figures (memory.ts) and logs (service-logs.ts). What stays here is the order of
 * things per worktree: one operation at a time, drains before stops, starts after stops.
 */
import type { LocalDefinition, ProjectConfig } from '../profiles/schema.js';
import { DEFAULT_HEALTH_TIMEOUT_MS } from '../profiles/validate-config.js';
import type { Logger } from '../logger.js';
import { composeProjectName, type ComposeFile } from './compose.js';
import { CommandInstances } from './command-instances.js';
import { ComposeInstances, type ComposeStart } from './compose-instances.js';
import { DockerObserver, type OwnedContainerEvent } from './docker-observer.js';
import { OwnedAddresses } from './owned-addresses.js';
import { ChangeSignal, CONTAINER_UNHEALTHY_DETAIL, DOCKER_UNREACHABLE_DETAIL, readContainerEvent } from './events.js';
import { healthCheckFor, PROBE_TIMEOUT_MS, sleep } from './health.js';
import { watchHealth } from './health-watch.js';
import { endDrain, healthyPorts, isRunning, markFailed, markStopping, toStatus, type Instance, type LocalServiceState, type LocalServiceStatus } from './instance.js';
import { MemoryFigures } from './memory.js';
import { deadLeftovers, liveServices, localDefinitionOf, planReconcile, unknownWorktree, type ReconcilePlan } from './plan.js';
import { PortAllocator } from './ports.js';
import type { ProcessExit } from './processes.js';
import { followLogs, logSourceOf, noLocalInstance, readLogs, type LogSource } from './service-logs.js';

/** The start/stop/keep lists a reconcile executes (re-exported for the daemon). */
export type { ReconcilePlan } from './plan.js';
/** An instance's lifecycle and status view (re-exported for the daemon). */
export type { LocalServiceState, LocalServiceStatus } from './instance.js';

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
  logger?: Logger;
  /** Any state or port changed, or Docker came or went: the daemon rebuilds its routing table. */
  onChange?: () => void;
  /** DOCKER_HOST for the Engine API and the Compose CLI; default DOCKER_HOST, else the system socket, else Docker Desktop's. */
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
  /** Range local ports are allocated from; default 21000-28999 (`DEVPROXY_LOCAL_PORTS`). */
  portRange?: { start: number; end: number };
}

interface WorktreeRuntime {
  spec: WorktreeRuntimeSpec;
  projectName: string;
  instances: Map<string, Instance>;
  adopted: boolean;
  queue: Promise<unknown>;
}

/** Local compose containers, processes and user-run ports of every worktree. */
export class LocalRuntime {
  private readonly opts: Required<Omit<LocalRuntimeOptions, 'logger' | 'onChange' | 'dockerHost' | 'portRange'>> & LocalRuntimeOptions;
  private readonly worktrees = new Map<string, WorktreeRuntime>();
  private readonly ports: PortAllocator;
  private readonly observer: DockerObserver;
  private readonly owned: OwnedAddresses;
  private readonly signal: ChangeSignal;
  private readonly compose: ComposeInstances;
  private readonly commands: CommandInstances;
  private readonly memory: MemoryFigures;
  /** Aborted by close(): queued drains end at once, the proxy has already drained by then. */
  private readonly closing = new AbortController();
  /** Drains and stops of services that left, running outside their worktree's queue. */
  private readonly leaving = new Set<Promise<void>>();

  constructor(opts: LocalRuntimeOptions) {
    this.opts = { drainMs: 2_000, startTimeoutMs: DEFAULT_HEALTH_TIMEOUT_MS, healthIntervalMs: 250, stopGraceMs: 5_000, memoryIntervalMs: 10_000, ...opts };
    this.signal = new ChangeSignal(opts.onChange, opts.logger);
    const changed = (): void => this.signal.emit();
    this.ports = new PortAllocator({ home: opts.home, ...(opts.portRange ? { range: opts.portRange } : {}) });
    const observerOpts: ConstructorParameters<typeof DockerObserver>[0] = {
      onEvent: (event) => this.onContainerEvent(event),
      onAvailability: (available) => this.onDockerAvailability(available),
    };
    if (opts.dockerHost !== undefined) observerOpts.dockerHost = opts.dockerHost;
    if (opts.logger) observerOpts.logger = opts.logger;
    this.observer = new DockerObserver(observerOpts);
    this.owned = new OwnedAddresses({
      snapshot: () => {
        // The cache is trusted only while an event feed is open: make sure one is.
        this.observer.watch();
        return this.observer.ownedAddresses();
      },
      eventFeed: () => this.observer.eventFeed(),
    });
    const jobOpts = { home: opts.home, ports: this.ports, stopGraceMs: this.opts.stopGraceMs, changed };
    this.compose = new ComposeInstances({ ...jobOpts, observer: this.observer, ...(opts.logger ? { logger: opts.logger } : {}) });
    this.commands = new CommandInstances({ ...jobOpts, onExit: (exit) => this.onProcessExit(exit) });
    this.memory = new MemoryFigures(
      () => [...this.worktrees.values()].flatMap((wt) => [...wt.instances.values()]),
      { container: (id) => this.observer.memoryBytes(id), process: (record) => this.commands.memoryBytes(record) },
      this.opts.memoryIntervalMs,
    );
  }

  /**
   * Where containers reach the host (Docker's `host-gateway` address), once Docker has been
   * needed and answered; undefined before, or when the engine and the bridge interface do not say.
   */
  async hostGateway(): Promise<string | undefined> {
    if (this.observer.available !== true) return undefined;
    return this.observer.hostGateway().catch(() => undefined);
  }

  /**
   * True when `address` is the address of a running container devproxy started (on any of its
   * networks), as the engine says now: at once when known, else after asking the engine.
   */
  isOwnContainerAddress(address: string): boolean | Promise<boolean> {
    return this.owned.isOwned(address);
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
      return planReconcile(spec.local, liveServices(known.instances.values()));
    }
    const { plan, started, stops } = await this.serialise(spec, async (wt) => {
      const definitions = new Map(spec.local.map((name) => [name, localDefinitionOf(spec.config, name)] as const));
      const needsDocker = [...definitions.values()].some((d) => d.local.kind === 'compose');
      if (!wt.adopted) await this.adopt(wt, needsDocker);
      const planned = planReconcile(spec.local, liveServices(wt.instances.values()));
      if (opts.dryRun) return { plan: planned, started: { verdicts: Promise.resolve() }, stops: Promise.resolve() };

      const composeFile = await this.compose.prepare(spec, composeServices(planned.start, (s) => definitions.get(s)?.local));

      // Switched back to local within the drain: keep the running instance (and its port).
      const keptVerdicts: Array<Promise<void>> = [];
      for (const inst of planned.keep.map((s) => wt.instances.get(s)!).filter((i) => i.drain !== undefined)) {
        if (await this.keepDraining(wt, inst)) keptVerdicts.push(this.watch(wt, inst).then(() => opts.onProgress?.(inst.service, inst.state, inst.detail)));
      }
      const plan = planReconcile(spec.local, liveServices(wt.instances.values()));
      // An instance that is being stopped goes first: the new one needs its port.
      await Promise.all(plan.start.map((s) => wt.instances.get(s)?.stopping?.catch(() => undefined)));

      const leftovers = deadLeftovers(wt.instances.values(), spec.local);
      const leaving = plan.stop.map((s) => wt.instances.get(s)!).filter((i) => i !== undefined && i.drain === undefined);
      for (const inst of leaving) this.beginStop(inst, opts);
      if (leaving.length > 0) this.signal.emit();
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
    return healthyPorts(this.worktrees.get(worktreePath)?.instances.values() ?? []);
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
      const composeFile = await this.compose.prepare(w.spec, composeServices([service], () => def.local));
      const inst = w.instances.get(service);
      if (inst) {
        endDrain(inst);
        this.beginStop(inst, opts);
        this.signal.emit();
        await this.stopInstance(w, inst);
      }
      return this.startServices(w, [service], composeFile, opts);
    }).then(({ verdicts }) => verdicts);
  }

  /** The last `lines` lines (default 100) a service wrote: its log file, or its container's logs. */
  async logs(worktreePath: string, service: string, opts: { lines?: number } = {}): Promise<string> {
    return readLogs(await this.logSource(worktreePath, service), opts.lines ?? 100, this.observer);
  }

  /**
   * Follows a service's output: first its last `lines` lines, then new output as it comes,
   * until `signal` aborts (or the container stops).
   */
  async *followLogs(worktreePath: string, service: string, opts: { lines?: number; signal?: AbortSignal } = {}): AsyncIterable<string> {
    const source = await this.logSource(worktreePath, service);
    yield* followLogs(source, { lines: opts.lines ?? 100, ...(opts.signal ? { signal: opts.signal } : {}) }, this.observer);
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

  /**
   * Refreshes the memory figures of every running instance (Docker stats take about a second
   * each, in parallel). Runs on its own every `memoryIntervalMs`; never on the request path.
   */
  refreshMemory(): Promise<void> {
    return this.memory.refresh();
  }

  /**
   * Stops watching (health loops, Docker events, memory timer). Containers and processes keep
   * running: a restarted daemon adopts them instead of restarting every dev server.
   */
  async close(): Promise<void> {
    this.signal.close();
    this.closing.abort();
    const memory = this.memory.close();
    for (const wt of this.worktrees.values()) for (const inst of wt.instances.values()) inst.watch?.abort();
    this.observer.close();
    this.commands.close();
    await Promise.allSettled([...this.worktrees.values()].map((wt) => wt.queue));
    await Promise.allSettled([...this.leaving]);
    await memory;
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

  private async stopEverything(worktreePath: string, opts: { releasePorts: boolean }): Promise<void> {
    const known = this.worktrees.get(worktreePath);
    const remove = async (wt: WorktreeRuntime | undefined): Promise<void> => {
      const instances = [...(wt?.instances.values() ?? [])];
      for (const inst of instances) {
        endDrain(inst);
        this.beginStop(inst, {});
      }
      if (instances.length > 0) this.signal.emit();
      if (wt) await Promise.all(instances.map((inst) => this.stopInstance(wt, inst)));
      // Sweep what this process may not track: processes and containers of an earlier daemon.
      await this.commands.sweep(worktreePath);
      await this.compose.sweep(worktreePath, wt?.projectName, instances.some((i) => i.kind === 'compose'));
      if (opts.releasePorts) await this.ports.releaseWorktree(worktreePath);
      this.worktrees.delete(worktreePath);
    };
    if (known) await this.serialise(known.spec, remove);
    else await remove(undefined);
    this.signal.emit();
  }

  /**
   * First contact with a worktree in this process: re-attach to the processes and containers a
   * previous daemon left running, so that they count as running (kept, not restarted).
   */
  private async adopt(wt: WorktreeRuntime, needsDocker: boolean): Promise<void> {
    const track = (found: Instance[]): void => {
      for (const inst of found) {
        if (wt.instances.has(inst.service)) continue;
        wt.instances.set(inst.service, inst);
        void this.watch(wt, inst);
      }
    };
    track(await this.commands.adopt(wt.spec));
    track(await this.compose.adopt(wt.spec, needsDocker));
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
    const composeStarts: ComposeStart[] = [];
    for (const name of services) {
      const { service, local } = localDefinitionOf(spec.config, name);
      const inst: Instance = { service: name, kind: local.kind, state: 'starting', check: healthCheckFor(service.health, 'tcp') };
      wt.instances.set(name, inst);
      started.push(inst);
      opts.onProgress?.(name, 'starting');
      if (local.kind === 'port') {
        inst.port = local.port;
      } else if (local.kind === 'command') {
        await this.commands.start(spec, inst, local);
      } else {
        inst.containerPort = local.port;
        composeStarts.push({ inst, compose: local.compose });
      }
    }
    this.signal.emit();
    if (composeFile) await this.compose.start({ ...spec, projectName: wt.projectName }, composeFile, composeStarts);
    // The watches start now (a stop must be able to abort them); the caller awaits their first
    // verdict outside the worktree's lock, so that a switch away is not held up by a slow start.
    const verdicts = Promise.all(
      started.map(async (inst) => {
        if (inst.state === 'starting') {
          // A user-run port service gets one short window; if it is not up yet, it is watched in the background.
          await this.watch(wt, inst, inst.kind === 'port' ? PROBE_TIMEOUT_MS : undefined);
        }
        opts.onProgress?.(inst.service, inst.state, inst.detail);
      }),
    ).then(() => undefined);
    return { verdicts };
  }

  /** Watches an instance's health (see watchHealth); the start timeout is the service's own `health.timeout`, else the runtime's. */
  private watch(wt: WorktreeRuntime, inst: Instance, timeoutMs?: number): Promise<void> {
    const isCurrent = (): boolean => wt.instances.get(inst.service) === inst;
    return watchHealth(inst, {
      timeoutMs: timeoutMs ?? wt.spec.config.services.get(inst.service)?.healthTimeoutMs ?? this.opts.startTimeoutMs,
      intervalMs: this.opts.healthIntervalMs,
      port: inst.kind === 'compose' ? () => this.compose.probePort(inst, isCurrent) : () => Promise.resolve(inst.port),
      isCurrent,
      lastLogLines: (record, n) => this.commands.lastLogLines(record, n),
      changed: () => this.signal.emit(),
    });
  }

  private beginStop(inst: Instance, opts: Pick<ReconcileOptions, 'onProgress'>): void {
    markStopping(inst);
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
    if (inst.kind === 'command' && !this.commands.isAlive(inst)) {
      await this.stopInstance(wt, inst);
      return false;
    }
    inst.state = 'starting';
    this.signal.emit();
    return true;
  }

  private trackLeaving(work: Promise<void>): Promise<void> {
    const tracked = work.finally(() => this.leaving.delete(tracked));
    this.leaving.add(tracked);
    tracked.catch((error: unknown) => this.opts.logger?.error(`runtime: stopping failed: ${error instanceof Error ? error.message : String(error)}`));
    return tracked;
  }

  private stopInstance(wt: WorktreeRuntime, inst: Instance): Promise<void> {
    inst.stopping ??= this.stopNow(wt, inst);
    return inst.stopping;
  }

  private async stopNow(wt: WorktreeRuntime, inst: Instance): Promise<void> {
    markStopping(inst);
    if (inst.kind === 'command') await this.commands.stop(wt.spec.path, inst.service);
    else if (inst.kind === 'compose') await this.compose.stop(wt.spec, inst.service);
    inst.state = 'stopped';
    if (wt.instances.get(inst.service) === inst) wt.instances.delete(inst.service);
    this.signal.emit();
  }

  private onProcessExit(exit: ProcessExit): void {
    const wt = this.worktrees.get(exit.record.worktreePath);
    const inst = wt?.instances.get(exit.record.service);
    if (!wt || !inst) return;
    this.commands.failExited(inst, exit, () => wt.instances.get(inst.service) === inst);
  }

  private onContainerEvent(event: OwnedContainerEvent): void {
    if (event.action === 'die') this.owned.forget(event.containerId);
    const wt = this.worktrees.get(event.worktreePath);
    const inst = wt?.instances.get(event.service);
    if (!wt || !inst) return;
    switch (readContainerEvent(inst, event)) {
      case 'oom':
        inst.oomKilled = true;
        return;
      case 'died':
        void this.compose.failExited(inst, event.containerId, event.exitCode, () => wt.instances.get(inst.service) === inst);
        return;
      case 'restarted':
        inst.state = 'starting';
        delete inst.lastLogLines;
        this.signal.emit();
        void this.watch(wt, inst);
        return;
      case 'unhealthy':
        inst.state = 'unhealthy';
        inst.detail = CONTAINER_UNHEALTHY_DETAIL;
        this.signal.emit();
        return;
      case 'healthy':
        inst.state = 'healthy';
        delete inst.detail;
        this.signal.emit();
        return;
      case 'ignore':
        return;
    }
  }

  private onDockerAvailability(available: boolean): void {
    // Status shows the engine's availability, so a change is a change even with no instance.
    this.signal.emit();
    if (!available) {
      for (const wt of this.worktrees.values()) {
        for (const inst of wt.instances.values()) {
          if (inst.kind === 'compose' && isRunning(inst)) {
            markFailed(inst, DOCKER_UNREACHABLE_DETAIL, []);
            this.signal.emit();
          }
        }
      }
      return;
    }
    void this.resync();
  }

  /** After the engine came back: instances whose container runs again are watched back to healthy. */
  private async resync(): Promise<void> {
    for (const wt of this.worktrees.values()) {
      const candidates = [...wt.instances.values()].filter((i) => i.kind === 'compose' && i.state === 'failed' && i.detail === DOCKER_UNREACHABLE_DETAIL);
      if (candidates.length === 0) continue;
      let running: Set<string>;
      try {
        running = await this.compose.runningContainerIds(wt.spec.path);
      } catch {
        return;
      }
      for (const inst of candidates) {
        if (inst.containerId === undefined || !running.has(inst.containerId)) continue;
        inst.state = 'starting';
        delete inst.detail;
        void this.watch(wt, inst);
      }
      this.signal.emit();
    }
  }

  private async logSource(worktreePath: string, service: string): Promise<LogSource> {
    const wt = this.worktrees.get(worktreePath);
    const facts: Parameters<typeof logSourceOf>[0] = { worktreePath, service };
    const inst = wt?.instances.get(service);
    const local = wt?.spec.config.services.get(service)?.local;
    if (inst) facts.inst = inst;
    if (local) facts.local = local;
    if (wt) facts.slug = wt.spec.slug;
    const source = logSourceOf(facts, (slug, name) => this.commands.logFile(slug, name));
    if (source) return source;
    const containerId = await this.compose.containerOf(worktreePath, service);
    if (!containerId) throw noLocalInstance(worktreePath, service);
    return { kind: 'container', containerId };
  }
}

/** The compose services among `services` (those whose local definition is compose). */
function composeServices(services: readonly string[], localOf: (service: string) => LocalDefinition | undefined): Array<{ service: string; compose: string }> {
  return services.flatMap((service) => {
    const local = localOf(service);
    return local?.kind === 'compose' ? [{ service, compose: local.compose }] : [];
  });
}
