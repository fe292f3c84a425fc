/**
 * The compose job of the runtime: the compose services of each worktree as running instances.
 * It checks a start can happen (compose file, service, engine), derives the compose file and
 * runs `up` for the services that start, finds their containers and published ports, stops and
 * removes them, adopts those a previous daemon left running, and sweeps a worktree's containers,
 * networks and derived file away. Compose files and the CLI are compose.ts; the engine is
 * docker-observer.ts.
 */
import { rm } from 'node:fs/promises';
import type { ProjectConfig } from '../profiles/schema.js';
import { composeFilePath } from '../home-paths.js';
import type { Logger } from '../logger.js';
import {
  assertComposeService,
  composeProjectDirectory,
  composeUp,
  deriveComposeDocument,
  derivedProjectsOf,
  findComposeFile,
  readComposeFile,
  usesHostNetwork,
  writeDerivedComposeFile,
  type ComposeFile,
  type ComposeServicePlan,
} from './compose.js';
import type { DockerObserver } from './docker-observer.js';
import { containerExitDetail } from './events.js';
import { healthCheckFor } from './health.js';
import { FAILED_LOG_LINES, isRunning, markFailed, type Instance } from './instance.js';
import type { PortAllocator } from './ports.js';

/** The worktree a compose operation is about. */
export interface ComposeWorktree {
  /** Main checkout path of the repository (ownership label). */
  repo: string;
  /** Worktree root. */
  path: string;
  slug: string;
  config: ProjectConfig;
  /** Extra environment for the containers. */
  env?: Record<string, string>;
  /** Compose project name (`<project>-<slug>`). */
  projectName: string;
}

/** One instance to start and the compose service that runs it. */
export interface ComposeStart {
  inst: Instance;
  /** Compose service name. */
  compose: string;
}

/** Options of {@link ComposeInstances}. */
export interface ComposeInstancesOptions {
  /** $DEVPROXY_HOME: derived compose files go to `compose/`. */
  home: string;
  observer: DockerObserver;
  ports: PortAllocator;
  logger?: Logger;
  /** SIGTERM → SIGKILL grace when stopping (ms; rounded up to whole seconds for Docker). */
  stopGraceMs: number;
  /** An instance's state changed. */
  changed: () => void;
}

/** Compose containers of every worktree. */
export class ComposeInstances {
  constructor(private readonly opts: ComposeInstancesOptions) {}

  /** Pings the engine (throwing how to start it when down) and subscribes to its events. */
  async ensureDocker(): Promise<void> {
    await this.opts.observer.ensureAvailable();
    this.opts.observer.watch();
  }

  /**
   * Checks, before anything changes, that `starts` can start: the worktree's compose file
   * exists and defines each compose service, and the engine answers. Answers the parsed file,
   * or undefined when nothing is to start.
   */
  async prepare(wt: Pick<ComposeWorktree, 'path' | 'config'>, starts: ReadonlyArray<{ service: string; compose: string }>): Promise<ComposeFile | undefined> {
    if (starts.length === 0) return undefined;
    const file = await readComposeFile(findComposeFile(wt.path, wt.config.compose));
    for (const s of starts) assertComposeService(file, s.compose, s.service);
    await this.ensureDocker();
    return file;
  }

  /**
   * Instances for the containers of the worktree that a previous daemon left running (the
   * caller keeps those whose service it does not track yet). Docker is only a must when
   * `needsDocker`: then a down engine throws the error that says how to start it.
   */
  async adopt(wt: Pick<ComposeWorktree, 'path' | 'config'>, needsDocker: boolean): Promise<Instance[]> {
    let containers: Awaited<ReturnType<DockerObserver['listOwned']>> = [];
    try {
      containers = await this.opts.observer.listOwned({ worktreePath: wt.path });
      this.opts.observer.watch();
    } catch (error) {
      // The ping records the engine as unavailable and throws the error that says how to start it.
      if (needsDocker) {
        await this.ensureDocker();
        throw error;
      }
    }
    return containers
      .filter((c) => c.state === 'running')
      .map((c) => {
        const svc = wt.config.services.get(c.service);
        const inst: Instance = { service: c.service, kind: 'compose', state: 'starting', check: healthCheckFor(svc?.health, 'http-any'), containerId: c.id };
        if (svc?.local?.kind === 'compose') inst.containerPort = svc.local.port;
        return inst;
      });
  }

  /**
   * Derives the compose file and runs `up` for `starts`, then records each one's container;
   * a failure marks the instances failed with Compose's own output.
   */
  async start(wt: ComposeWorktree, file: ComposeFile, starts: readonly ComposeStart[]): Promise<void> {
    if (starts.length === 0) return;
    const managed = new Map<string, ComposeServicePlan>();
    const services = file.doc.services as Record<string, unknown>;
    for (const [name, svc] of wt.config.services) {
      if (svc.local?.kind !== 'compose' || !file.services.includes(svc.local.compose)) continue;
      const plan: ComposeServicePlan = { service: name, containerPort: svc.local.port };
      if (svc.memoryBytes !== undefined) plan.memoryBytes = svc.memoryBytes;
      if (usesHostNetwork(services[svc.local.compose])) {
        plan.hostPort = await this.opts.ports.allocate(wt.path, name);
      }
      managed.set(svc.local.compose, plan);
    }
    for (const { inst, compose } of starts) {
      const hostPort = managed.get(compose)?.hostPort;
      const health = wt.config.services.get(inst.service)?.health;
      if (hostPort !== undefined) {
        inst.hostNetwork = true;
        inst.port = hostPort;
        inst.check = healthCheckFor(health, 'tcp');
      } else {
        inst.check = healthCheckFor(health, 'http-any');
      }
    }
    const deriveOpts: Parameters<typeof deriveComposeDocument>[1] = { repo: wt.repo, worktreePath: wt.path, slug: wt.slug, managed, config: wt.config };
    if (wt.env) deriveOpts.env = wt.env;
    try {
      const derived = await writeDerivedComposeFile(this.opts.home, wt.projectName, deriveComposeDocument(file.doc, deriveOpts));
      const env = { ...process.env, DOCKER_HOST: this.opts.observer.dockerHost };
      await composeUp({
        file: derived,
        projectName: wt.projectName,
        projectDirectory: composeProjectDirectory(file.path),
        services: starts.map((s) => s.compose),
        env,
      });
    } catch (error) {
      const lines = messageOf(error).split('\n');
      for (const { inst } of starts) this.fail(inst, lines[0] ?? 'compose failed', lines.slice(1));
      this.opts.logger?.error(`runtime: ${messageOf(error)}`);
      return;
    }
    await Promise.all(
      starts.map(async ({ inst }) => {
        const containers = await this.opts.observer.listOwned({ worktreePath: wt.path, service: inst.service });
        const container = containers.find((c) => c.state === 'running') ?? containers[0];
        if (container) inst.containerId = container.id;
        else this.fail(inst, `compose reported success but no container of ${inst.service} exists`, []);
      }),
    );
  }

  /**
   * The host port to probe for a compose instance now: Docker's published port (it may change
   * when the container is recreated), devproxy's own on the host network, undefined while there
   * is none. A container found not running is failed here (its die event may not have arrived).
   */
  async probePort(inst: Instance, isCurrent: () => boolean): Promise<number | undefined> {
    if (inst.hostNetwork) return inst.port;
    if (!inst.containerId || inst.containerPort === undefined) return undefined;
    try {
      const found = await this.opts.observer.hostPort(inst.containerId, inst.containerPort);
      if (!found.running) {
        if (found.oomKilled) inst.oomKilled = true;
        await this.failExited(inst, inst.containerId, found.exitCode, isCurrent);
        return undefined;
      }
      if (found.hostNetwork && inst.port === undefined) return undefined;
      if (found.port !== undefined && found.port !== inst.port) inst.port = found.port;
      return found.port;
    } catch {
      return undefined;
    }
  }

  /** Fails a running instance whose container exited, with the container's last lines. */
  async failExited(inst: Instance, containerId: string, exitCode: number | undefined, isCurrent: () => boolean): Promise<void> {
    let lines: string[] = [];
    try {
      lines = await this.opts.observer.lastLogLines(containerId, FAILED_LOG_LINES);
    } catch {
      // Removed meanwhile, or the engine is gone: fail without lines.
    }
    if (!isCurrent() || !isRunning(inst) || inst.containerId !== containerId) return;
    this.fail(inst, containerExitDetail(exitCode, inst.oomKilled === true), lines);
  }

  /** Stops and removes the service's containers; a down engine counts as stopped (it stopped them). */
  async stop(wt: Pick<ComposeWorktree, 'path' | 'slug'>, service: string): Promise<void> {
    try {
      const containers = await this.opts.observer.listOwned({ worktreePath: wt.path, service });
      await Promise.all(containers.map((c) => this.opts.observer.stopAndRemove(c.id, this.graceSeconds())));
    } catch (error) {
      if (!isConnectionError(error)) throw error;
      // The stopped containers are removed by the next start of the service or by a sweep.
      this.opts.logger?.warn(`runtime: Docker is not reachable; ${service} of ${wt.slug} counts as stopped`);
    }
  }

  /**
   * Stops and removes every container of the worktree (those of an earlier daemon too), the
   * networks of its compose projects and their derived files. A down engine is an error only
   * when `dockerNeeded` (the worktree ran compose services).
   */
  async sweep(worktreePath: string, projectName: string | undefined, dockerNeeded: boolean): Promise<void> {
    const observer = this.opts.observer;
    try {
      const containers = await observer.listOwned({ worktreePath });
      const projects = new Set(containers.map((c) => c.composeProject).filter((p): p is string => p !== undefined));
      if (projectName !== undefined) projects.add(projectName);
      // A process that never ran the worktree, after a daemon stopped every container, knows its projects only from here.
      for (const project of await derivedProjectsOf(this.opts.home, worktreePath)) projects.add(project);
      await Promise.all(containers.map((c) => observer.stopAndRemove(c.id, this.graceSeconds())));
      for (const project of projects) {
        await observer.removeComposeNetworks(project);
        await rm(composeFilePath(this.opts.home, project), { force: true });
      }
    } catch (error) {
      if (dockerNeeded || !isConnectionError(error)) throw isConnectionError(error) ? observer.unavailableError(error) : error;
    }
  }

  /** Ids of the worktree's running containers. */
  async runningContainerIds(worktreePath: string): Promise<Set<string>> {
    const containers = await this.opts.observer.listOwned({ worktreePath });
    return new Set(containers.filter((c) => c.state === 'running').map((c) => c.id));
  }

  /** Id of a container of the service (for its logs), asking the engine when no instance knows it. */
  async containerOf(worktreePath: string, service: string): Promise<string | undefined> {
    await this.ensureDocker();
    return (await this.opts.observer.listOwned({ worktreePath, service }))[0]?.id;
  }

  private fail(inst: Instance, detail: string, lines: string[]): void {
    markFailed(inst, detail, lines);
    this.opts.changed();
  }

  private graceSeconds(): number {
    return Math.ceil(this.opts.stopGraceMs / 1000);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The engine is not there (socket missing, refused, not allowed, silent). */
function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES' || code === 'ETIMEDOUT';
}
