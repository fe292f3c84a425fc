/**
 * Host ports devproxy hands out to local instances it cannot let Docker choose for: processes
 * (`command:` services, which get PORT) and host-network containers. A (worktree, service) pair
 * keeps its port across restarts of the service and of the daemon, and while it is persisted in
 * `$DEVPROXY_HOME/ports.json` it never moves, so bookmarks and app config that captured it stay valid.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { DevproxyError } from '../errors.js';
import { homePaths } from '../home-paths.js';
import { readJsonState, writeJsonState } from './json-state.js';

/**
 * First port of the range devproxy allocates from. The range lies below the kernels' default ephemeral
 * ports (Linux 32768-60999, macOS and Windows 49152-65535): a port an outgoing connection holds
 * (the browser's, the daemon's own to an upstream) cannot be bound by a server, so a service
 * given one would fail to start whenever such a connection happened to have it.
 */
export const PORT_RANGE_START = 21_000;
/** Last port (inclusive) of the range devproxy allocates from. */
export const PORT_RANGE_END = 28_999;
const DEFAULT_PORT_RANGE = { start: PORT_RANGE_START, end: PORT_RANGE_END };

interface PortsFile {
  /** `<worktree path>\0<service>` → port. */
  ports: Record<string, number>;
}

/** True when nothing listens on 127.0.0.1:<port> (we could bind it right now). */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

/**
 * Parses `DEVPROXY_LOCAL_PORTS` (`27000-27999`): the range devproxy allocates local ports from,
 * for machines where 21000-28999 is used by something else.
 */
export function parsePortRange(text: string): { start: number; end: number } {
  const match = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(text);
  const start = Number(match?.[1]);
  const end = Number(match?.[2]);
  if (!match || start < 1024 || end > 65_535 || start > end) {
    throw new DevproxyError('DEVPROXY_ERR_USAGE', `DEVPROXY_LOCAL_PORTS must be a range like 27000-27999 (from 1024 to 65535), not "${text}"`);
  }
  return { start, end };
}

/** The range `DEVPROXY_LOCAL_PORTS` names in `env`, undefined when it is unset (the default range). */
export function localPortRangeFromEnv(env: NodeJS.ProcessEnv): { start: number; end: number } | undefined {
  return env.DEVPROXY_LOCAL_PORTS ? parsePortRange(env.DEVPROXY_LOCAL_PORTS) : undefined;
}

/**
 * The warning for a local-port range that overlaps the kernel's ephemeral ports, from the text
 * of `/proc/sys/net/ipv4/ip_local_port_range` (`32768\t60999`); undefined when they are apart
 * or the text is not a range.
 */
export function ephemeralOverlapWarning(range: { start: number; end: number }, ipLocalPortRange: string): string | undefined {
  const match = /^\s*(\d+)\s+(\d+)\s*$/.exec(ipLocalPortRange);
  if (!match) return undefined;
  const ephemeral = { start: Number(match[1]), end: Number(match[2]) };
  if (range.end < ephemeral.start || range.start > ephemeral.end) return undefined;
  return (
    `local ports ${range.start}-${range.end} overlap the kernel's ephemeral ports ${ephemeral.start}-${ephemeral.end}: ` +
    `a service fails to start when an outgoing connection holds its port; set DEVPROXY_LOCAL_PORTS to a range below ${ephemeral.start}`
  );
}

/** Where Linux keeps its ephemeral port range; other systems have no such file. */
const EPHEMERAL_PORTS_FILE = '/proc/sys/net/ipv4/ip_local_port_range';

/** {@link ephemeralOverlapWarning} on this machine's kernel; undefined where it does not say its range. */
export async function localPortRangeWarning(range: { start: number; end: number } = DEFAULT_PORT_RANGE): Promise<string | undefined> {
  const text = await readFile(EPHEMERAL_PORTS_FILE, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : ephemeralOverlapWarning(range, text);
}

/** Options of {@link PortAllocator}. */
export interface PortAllocatorOptions {
  /** $DEVPROXY_HOME; the state lives in `<home>/ports.json`. */
  home: string;
  /** Inclusive range to allocate from; default 21000–28999. */
  range?: { start: number; end: number };
}

/** Stable per-(worktree, service) host ports, persisted atomically. */
export class PortAllocator {
  private readonly file: string;
  private readonly range: { start: number; end: number };
  /** Serialises read-modify-write of the file inside this process. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: PortAllocatorOptions) {
    this.file = homePaths(opts.home).ports;
    this.range = opts.range ?? DEFAULT_PORT_RANGE;
  }

  /**
   * The port of (worktreePath, service): the persisted one, always (it never moves while it is
   * in ports.json, so URLs and app config that captured it stay valid; a stranger holding it is
   * reported by the caller), else the first free port of the range that no other pair owns,
   * persisted before it is returned.
   */
  allocate(worktreePath: string, service: string): Promise<number> {
    return this.serialise(async () => {
      const state = await this.read();
      const key = keyOf(worktreePath, service);
      const current = state.ports[key];
      if (current !== undefined) return current;
      const taken = new Set(Object.values(state.ports));
      for (let port = this.range.start; port <= this.range.end; port++) {
        if (taken.has(port) || !(await isPortFree(port))) continue;
        state.ports[key] = port;
        await writeJsonState(this.file, state);
        return port;
      }
      throw new DevproxyError(
        'DEVPROXY_ERR_PORTS_EXHAUSTED',
        `no free port left in ${this.range.start}-${this.range.end} for ${service} in ${worktreePath}`,
      );
    });
  }

  /** The persisted port of (worktreePath, service), if any, without allocating. */
  async lookup(worktreePath: string, service: string): Promise<number | undefined> {
    return (await this.read()).ports[keyOf(worktreePath, service)];
  }

  /** Forgets every port of a worktree (it was removed). */
  releaseWorktree(worktreePath: string): Promise<void> {
    return this.serialise(async () => {
      const state = await this.read();
      const prefix = `${worktreePath}\0`;
      const before = Object.keys(state.ports).length;
      for (const key of Object.keys(state.ports)) if (key.startsWith(prefix)) delete state.ports[key];
      if (Object.keys(state.ports).length !== before) await writeJsonState(this.file, state);
    });
  }

  private async read(): Promise<PortsFile> {
    const state = await readJsonState<Partial<PortsFile>>(this.file, {});
    return { ports: state.ports && typeof state.ports === 'object' ? { ...state.ports } : {} };
  }

  private serialise<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function keyOf(worktreePath: string, service: string): string {
  return `${worktreePath}\0${service}`;
}
