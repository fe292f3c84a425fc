/**
 * devproxy's view of the Docker engine (its own small API client, docker-engine-api.ts): the
 * containers it owns (by label),
 * their ports, memory and last log lines, and a live event feed (start, die, oom,
 * health_status) that reconnects by itself when the engine restarts. Engine availability is
 * state to report, never a crash: a down engine only fails the operations that need it, with a
 * DevproxyError saying how to start it.
 */
import { existsSync } from 'node:fs';
import { homedir, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { DevproxyError } from '../errors.js';
import type { Logger } from '../logger.js';
import { LABEL_REPO, LABEL_SERVICE, LABEL_SLUG, LABEL_WORKTREE, lastLines } from './compose.js';
import { sleep } from './health.js';
import { bridgeGateway, localAddresses, type BridgeNetworkInspect } from './docker-gateway.js';
import { DockerEngineApi, ENGINE_TIMEOUT_MS, demuxDockerLog, isEngineStatus, logDemuxer, splitLines } from './docker-engine-api.js';
import { containerAddresses, type ContainerNetworksInspect } from './owned-addresses.js';

/** Container events devproxy reacts to. */
export const WATCHED_EVENTS = ['start', 'die', 'oom', 'health_status'] as const;

/** Where Docker Engine listens on Linux by default. */
const SYSTEM_SOCKET = '/var/run/docker.sock';

/** Wait between reconnect attempts to a down engine (ms): grows from the first to the last. */
const RECONNECT_DELAYS_MS = [500, 1_000, 2_000, 5_000];

/** A container carrying devproxy's ownership labels. */
export interface OwnedContainer {
  id: string;
  repo: string;
  worktreePath: string;
  service: string;
  slug: string;
  /** Compose project label, when Compose created it. */
  composeProject?: string;
  /** Docker's state word: running, exited, created… */
  state: string;
}

/** One event about an owned container. */
export interface OwnedContainerEvent {
  /** start | die | oom | health_status */
  action: string;
  /** For health_status: healthy | unhealthy | starting. */
  health?: string;
  /** For die: the exit code Docker reports. */
  exitCode?: number;
  containerId: string;
  worktreePath: string;
  service: string;
}

/** What inspecting a container says about where it listens. */
export interface ContainerPort {
  /** Published host port on 127.0.0.1; absent for host networking or before it is published. */
  port?: number;
  hostNetwork: boolean;
  running: boolean;
  /** Exit code of a container that is not running. */
  exitCode?: number;
  /** The kernel killed it for exceeding its memory limit. */
  oomKilled?: boolean;
}

/**
 * The engine's address as a DOCKER_HOST value: the given one (or the environment's), else the
 * system socket, else Docker Desktop's per-user socket when only that one exists (macOS).
 */
export function resolveDockerHost(
  dockerHost = process.env.DOCKER_HOST,
  where: { home?: string; systemSocket?: string } = {},
): string {
  if (dockerHost) return dockerHost;
  const systemSocket = where.systemSocket ?? SYSTEM_SOCKET;
  const desktop = join(where.home ?? homedir(), '.docker', 'run', 'docker.sock');
  if (!existsSync(systemSocket) && existsSync(desktop)) return `unix://${desktop}`;
  return `unix://${systemSocket}`;
}

/** Options of {@link DockerObserver}. */
export interface DockerObserverOptions {
  /** DOCKER_HOST value; default {@link resolveDockerHost}. */
  dockerHost?: string;
  logger?: Logger;
  /** An event about a devproxy-owned container. */
  onEvent?: (event: OwnedContainerEvent) => void;
  /** The engine went away or came back (also after the first successful connect). */
  onAvailability?: (available: boolean) => void;
}

/** The parts of `GET /containers/json` this reads. */
interface ContainerSummary {
  Id: string;
  State: string;
  Labels: Record<string, string> | null;
}

/** The parts of `GET /containers/{id}/json` this reads. */
interface ContainerInspect extends ContainerNetworksInspect {
  Config?: { Tty?: boolean };
  HostConfig?: { NetworkMode?: string };
  NetworkSettings?: ContainerNetworksInspect['NetworkSettings'] & { Ports?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null };
  State?: { Running?: boolean; Status?: string; ExitCode?: number; OOMKilled?: boolean };
}

/** Engine API client plus a self-healing event subscription. */
export class DockerObserver {
  /** The Docker Engine API client (every call goes through it). */
  private readonly engine: DockerEngineApi;
  /** DOCKER_HOST value in use; also what the Compose CLI must be given. */
  readonly dockerHost: string;
  private readonly opts: DockerObserverOptions;
  private availableState: boolean | undefined;
  private closed = false;
  private watching = false;
  private eventStream: Readable | undefined;
  /** Event feeds opened so far: the id of the open one, see {@link eventFeed}. */
  private feeds = 0;
  private readonly stop = new AbortController();
  /**
   * The bridge gateway looked up since the engine last (re)connected: the runtime asks on every
   * change, and only a new engine (a restart may renumber its bridge) can move it.
   */
  private gateway: Promise<string | undefined> | undefined;

  constructor(opts: DockerObserverOptions = {}) {
    this.opts = opts;
    this.dockerHost = resolveDockerHost(opts.dockerHost);
    this.engine = new DockerEngineApi(this.dockerHost);
  }

  /** Last known engine availability; undefined before the first contact. */
  get available(): boolean | undefined {
    return this.availableState;
  }

  /** Pings the engine; throws DEVPROXY_ERR_DOCKER_UNAVAILABLE (with how to start it) when it does not answer. */
  async ensureAvailable(): Promise<void> {
    try {
      await this.engine.ping();
      this.setAvailable(true);
    } catch (error) {
      this.setAvailable(false);
      throw this.unavailableError(error);
    }
  }

  /** The error for a down engine, naming where it was expected. */
  unavailableError(cause: unknown): DevproxyError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new DevproxyError(
      'DEVPROXY_ERR_DOCKER_UNAVAILABLE',
      `Docker is not reachable at ${this.dockerHost} (${reason})`,
      { cause },
    );
  }

  /** Starts the event subscription (idempotent); it reconnects until {@link close}. */
  watch(): void {
    if (this.watching || this.closed) return;
    this.watching = true;
    void this.eventLoop();
  }

  private async eventLoop(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      try {
        await this.engine.ping();
        attempt = 0;
        const stream = await this.engine.stream('/events', {
          query: { filters: { type: ['container'], label: [LABEL_WORKTREE], event: [...WATCHED_EVENTS] } },
        });
        if (this.closed) {
          stream.destroy();
          return;
        }
        this.eventStream = stream;
        this.feeds++;
        // Events after the stream is open are seen; mark available only now so that a resync
        // triggered by the availability change cannot miss a die that happens meanwhile.
        this.setAvailable(true);
        await this.consume(stream);
      } catch (error) {
        if (this.closed) return;
        if (this.availableState !== false) this.opts.logger?.warn(`docker: ${this.dockerHost} not reachable: ${errorMessage(error)}`);
      }
      this.eventStream = undefined;
      if (this.closed) return;
      this.setAvailable(false);
      await sleep(RECONNECT_DELAYS_MS[Math.min(attempt++, RECONNECT_DELAYS_MS.length - 1)]!, this.stop.signal);
    }
  }

  private consume(stream: Readable): Promise<void> {
    return new Promise((resolve) => {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const split = splitLines(rest + chunk);
        rest = split.rest;
        for (const line of split.lines) this.handleEventLine(line);
      });
      stream.once('end', () => resolve());
      stream.once('close', () => resolve());
      stream.once('error', () => resolve());
    });
  }

  /**
   * The id of the event feed open now, undefined while none is: every event about an owned
   * container since a feed opened was seen as long as the same id is answered.
   */
  eventFeed(): number | undefined {
    return this.eventStream === undefined ? undefined : this.feeds;
  }

  private handleEventLine(line: string): void {
    let raw: { Action?: string; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    try {
      raw = JSON.parse(line) as typeof raw;
    } catch {
      return;
    }
    const attributes = raw.Actor?.Attributes ?? {};
    const worktreePath = attributes[LABEL_WORKTREE];
    const service = attributes[LABEL_SERVICE];
    const containerId = raw.Actor?.ID ?? raw.id;
    if (!raw.Action || !worktreePath || !service || !containerId) return;
    // health_status arrives as "health_status: healthy".
    const [action, detail] = raw.Action.split(':').map((s) => s.trim()) as [string, string | undefined];
    const event: OwnedContainerEvent = { action, containerId, worktreePath, service };
    if (action === 'health_status' && detail) event.health = detail;
    if (action === 'die' && attributes.exitCode !== undefined) event.exitCode = Number(attributes.exitCode);
    this.opts.onEvent?.(event);
  }

  private setAvailable(available: boolean): void {
    if (this.availableState === available) return;
    this.availableState = available;
    this.gateway = undefined;
    this.opts.onAvailability?.(available);
  }

  /** Containers (running or not) with devproxy labels, optionally of one worktree only. */
  async listOwned(filter: { worktreePath?: string; service?: string } = {}): Promise<OwnedContainer[]> {
    const labels = [filter.worktreePath ? `${LABEL_WORKTREE}=${filter.worktreePath}` : LABEL_WORKTREE];
    if (filter.service) labels.push(`${LABEL_SERVICE}=${filter.service}`);
    const list = await this.engine.json<ContainerSummary[]>('/containers/json', { query: { all: true, filters: { label: labels } } });
    return list.map((c) => {
      const containerLabels = c.Labels ?? {};
      const owned: OwnedContainer = {
        id: c.Id,
        repo: containerLabels[LABEL_REPO] ?? '',
        worktreePath: containerLabels[LABEL_WORKTREE] ?? '',
        service: containerLabels[LABEL_SERVICE] ?? '',
        slug: containerLabels[LABEL_SLUG] ?? '',
        state: c.State,
      };
      const project = containerLabels['com.docker.compose.project'];
      if (project) owned.composeProject = project;
      return owned;
    });
  }

  /**
   * Address → id of every running (or starting) container with devproxy's labels, on each of its
   * networks (from each one's inspect, which every engine answers alike); one that went away
   * meanwhile is left out. Only containers whose `die` the event feed passes on (both labels).
   */
  async ownedAddresses(): Promise<Map<string, string>> {
    const filters = { label: [LABEL_WORKTREE, LABEL_SERVICE], status: ['running', 'created', 'restarting'] };
    const list = await this.engine.json<ContainerSummary[]>('/containers/json', { query: { filters } });
    const addresses = new Map<string, string>();
    const inspected = await Promise.all(list.map((c) => this.inspect(c.Id).then((info) => ({ id: c.Id, info }), () => undefined)));
    for (const found of inspected) {
      if (found !== undefined) for (const address of containerAddresses(found.info)) addresses.set(address, found.id);
    }
    return addresses;
  }

  /**
   * The host port Docker published for `<containerPort>/tcp` on 127.0.0.1, undefined while the
   * container is not running or publishes nothing (host network: use devproxy's own port).
   */
  async hostPort(containerId: string, containerPort: number): Promise<ContainerPort> {
    const info = await this.inspect(containerId);
    const hostNetwork = info.HostConfig?.NetworkMode === 'host';
    const bindings = info.NetworkSettings?.Ports?.[`${containerPort}/tcp`] ?? [];
    const binding = bindings.find((b) => b.HostIp === '127.0.0.1') ?? bindings[0];
    const port = binding?.HostPort ? Number(binding.HostPort) : undefined;
    const result: ContainerPort = { hostNetwork, running: info.State?.Running === true };
    if (port !== undefined) result.port = port;
    if (!result.running && typeof info.State?.ExitCode === 'number') result.exitCode = info.State.ExitCode;
    if (info.State?.OOMKilled) result.oomKilled = true;
    return result;
  }

  /**
   * Memory in use by a container, as `docker stats` shows it (usage minus page cache), in bytes.
   * Takes about a second (the engine samples): callers cache it.
   */
  async memoryBytes(containerId: string): Promise<number | undefined> {
    const stats = await this.engine.json<{ memory_stats?: { usage?: number; stats?: Record<string, number> } }>(
      `/containers/${encodeURIComponent(containerId)}/stats`,
      { query: { stream: false } },
    );
    const usage = stats.memory_stats?.usage;
    if (usage === undefined) return undefined;
    const s = stats.memory_stats?.stats ?? {};
    const cache = s.total_inactive_file ?? s.inactive_file ?? s.cache ?? 0;
    return Math.max(0, usage - cache);
  }

  /** The last `n` lines a container wrote (stdout and stderr, interleaved as written). */
  async lastLogLines(containerId: string, n: number): Promise<string[]> {
    const buffer = await this.engine.buffer(`/containers/${encodeURIComponent(containerId)}/logs`, {
      query: { stdout: true, stderr: true, tail: n, follow: false },
    });
    return lastLines(demuxDockerLog(buffer), n);
  }

  /**
   * A following log stream of a container as plain output (Docker multiplexes stdout/stderr
   * frames unless the container has a TTY: those are demultiplexed here); ending it stops following.
   */
  async followLogs(containerId: string, tail: number): Promise<PassThrough> {
    const tty = (await this.inspect(containerId)).Config?.Tty === true;
    const raw = await this.engine.stream(`/containers/${encodeURIComponent(containerId)}/logs`, {
      query: { stdout: true, stderr: true, tail, follow: true },
    });
    const out = new PassThrough();
    const demux = tty ? (chunk: Buffer) => [chunk] : logDemuxer();
    raw.on('data', (chunk: Buffer) => {
      // The reader may end `out` while the engine still sends (an aborted follow).
      if (out.writableEnded) return;
      for (const payload of demux(chunk)) out.write(payload);
    });
    const finish = (): void => {
      if (!out.writableEnded) out.end();
    };
    raw.once('end', finish);
    raw.once('error', finish);
    out.once('close', () => raw.destroy());
    return out;
  }

  /**
   * Stops (grace period, then SIGKILL by Docker) and removes a container. A container that is
   * already stopped or gone counts as done (the engine answers 304/404 there).
   */
  async stopAndRemove(containerId: string, graceSeconds: number): Promise<void> {
    const path = `/containers/${encodeURIComponent(containerId)}`;
    try {
      // The engine answers a stop only after the grace period: wait that long on top.
      await this.engine.buffer(`${path}/stop`, { method: 'POST', query: { t: graceSeconds }, timeoutMs: graceSeconds * 1_000 + ENGINE_TIMEOUT_MS });
    } catch (error) {
      if (!isEngineStatus(error, 304) && !isEngineStatus(error, 404)) throw error;
    }
    try {
      await this.engine.buffer(path, { method: 'DELETE', query: { force: true, v: true } });
    } catch (error) {
      if (!isEngineStatus(error, 404) && !isEngineStatus(error, 409)) throw error;
    }
  }

  /** Removes the networks Compose created for a project (after its containers are gone). */
  async removeComposeNetworks(projectName: string): Promise<void> {
    const networks = await this.engine.json<Array<{ Id: string }>>('/networks', {
      query: { filters: { label: [`com.docker.compose.project=${projectName}`] } },
    });
    for (const n of networks) {
      try {
        await this.engine.buffer(`/networks/${encodeURIComponent(n.Id)}`, { method: 'DELETE' });
      } catch (error) {
        if (!isEngineStatus(error, 404)) throw error;
      }
    }
  }

  /**
   * The address containers reach the host by (Docker's `host-gateway`: the default bridge's
   * gateway), from the engine, else from the bridge interface; undefined when neither has it.
   * Looked up once per engine connection (again after the engine went away and came back).
   */
  hostGateway(): Promise<string | undefined> {
    if (this.gateway !== undefined) return this.gateway;
    const lookup = this.lookUpGateway();
    this.gateway = lookup;
    // Only an address is kept: a failed or empty answer is asked again next time, as before.
    const forget = (): void => {
      if (this.gateway === lookup) this.gateway = undefined;
    };
    lookup.then((address) => {
      if (address === undefined) forget();
    }, forget);
    return lookup;
  }

  private async lookUpGateway(): Promise<string | undefined> {
    const network = await this.engine.json<BridgeNetworkInspect>('/networks/bridge');
    return bridgeGateway(network, networkInterfaces(), await localAddresses());
  }

  private inspect(containerId: string): Promise<ContainerInspect> {
    return this.engine.json<ContainerInspect>(`/containers/${encodeURIComponent(containerId)}/json`);
  }

  /** Ends the event subscription; in-flight API calls finish on their own. */
  close(): void {
    this.closed = true;
    this.stop.abort();
    this.eventStream?.destroy();
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
