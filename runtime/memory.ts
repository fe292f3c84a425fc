/**
 * Memory budgets, the point of running only part of a stack locally: what a set of local
 * services declares (`memory:` in devproxy.yaml), what the machine has available, what each
 * running instance uses (refreshed off the request path), and the figures `devproxy status`
 * shows (e.g. `248 MB local (full: 10.5 GB)`).
 */
import { readFile } from 'node:fs/promises';
import { freemem } from 'node:os';
import type { ProjectConfig } from '../profiles/schema.js';
import { isRunning, type Instance } from './instance.js';
import type { ProcessRecord } from './processes.js';

/** Sum of the declared `memory:` of the named services (services without one count 0). */
export function declaredMemoryBytes(config: ProjectConfig, services: readonly string[]): number {
  let total = 0;
  for (const name of new Set(services)) total += config.services.get(name)?.memoryBytes ?? 0;
  return total;
}

/** The result of {@link checkMemoryBudget}. */
export interface MemoryBudgetCheck {
  /** Declared memory of the services about to start, in bytes. */
  declaredBytes: number;
  /** Memory the machine has available now, in bytes. */
  availableBytes: number;
  /** True when starting them would not fit: warn before starting. */
  exceeds: boolean;
}

/**
 * Compares the declared memory of the services that are about to start (not those already
 * running: they are paid for) with the memory available (pure; pass `availableMemoryBytes()`).
 */
export function checkMemoryBudget(config: ProjectConfig, toStart: readonly string[], availableBytes: number): MemoryBudgetCheck {
  const declaredBytes = declaredMemoryBytes(config, toStart);
  return { declaredBytes, availableBytes, exceeds: declaredBytes > availableBytes };
}

/**
 * Memory available for new processes, in bytes: MemAvailable of /proc/meminfo on Linux (free
 * memory alone ignores reclaimable page cache and would warn far too often), else os.freemem().
 */
export async function availableMemoryBytes(): Promise<number> {
  try {
    const match = /^MemAvailable:\s+(\d+)\s+kB$/m.exec(await readFile('/proc/meminfo', 'utf8'));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // Not Linux.
  }
  return freemem();
}

/** Human memory figure as status prints it: `248 MB`, `10.5 GB` (binary units, like the config's). */
export function formatMemory(bytes: number): string {
  const MB = 1024 * 1024;
  const GB = 1024 * MB;
  if (bytes >= GB) return `${Number((bytes / GB).toFixed(1))} GB`;
  if (bytes >= MB) return `${Math.round(bytes / MB)} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} B`;
}

/** Where the memory in use of an instance is read. */
export interface MemoryReaders {
  /** A container's memory as `docker stats` shows it; undefined when the engine does not say. */
  container: (containerId: string) => Promise<number | undefined>;
  /** RSS of a process tree. */
  process: (record: ProcessRecord) => Promise<number>;
}

/**
 * Keeps `memoryBytes` of every running instance current: a refresh reads them all in parallel
 * (Docker stats take about a second each), one refresh at a time, every `intervalMs` (0: only
 * when asked). A figure read for a container or process that was replaced meanwhile is dropped.
 */
export class MemoryFigures {
  private readonly timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly instances: () => Iterable<Instance>,
    private readonly readers: MemoryReaders,
    intervalMs: number,
  ) {
    if (intervalMs > 0) {
      this.timer = setInterval(() => void this.refresh(), intervalMs);
      this.timer.unref();
    }
  }

  /** Refreshes every running instance's figure; joins the refresh under way, if any. */
  refresh(): Promise<void> {
    this.running ??= Promise.all([...this.instances()].filter(isRunning).map((inst) => this.read(inst))).then(
      () => undefined,
    ).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Stops the timer and waits for the refresh under way. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async read(inst: Instance): Promise<void> {
    try {
      if (inst.kind === 'compose' && inst.containerId) {
        const id = inst.containerId;
        const bytes = await this.readers.container(id);
        if (bytes !== undefined && inst.containerId === id) inst.memoryBytes = bytes;
      } else if (inst.kind === 'command' && inst.process) {
        const record = inst.process;
        const bytes = await this.readers.process(record);
        if (inst.process === record) inst.memoryBytes = bytes;
      }
    } catch {
      // The container or process went meanwhile: the next refresh sees its successor.
    }
  }
}
