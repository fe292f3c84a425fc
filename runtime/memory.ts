/**
 * Memory budgets, the point of running only part of a stack locally: what a set of local
 * services declares (`memory:` in devproxy.yaml), what the machine has available, and the
 * figures `devproxy status` shows (e.g. `248 MB local (full: 10.5 GB)`).
 */
import { readFile } from 'node:fs/promises';
import { freemem } from 'node:os';
import type { ProjectConfig } from '../profiles/schema.js';

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
