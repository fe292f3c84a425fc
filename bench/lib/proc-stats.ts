/** Reads a process's memory and CPU from /proc (Linux only), for the daemon's footprint figures. */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

/** Kernel clock ticks per second used by /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const CLOCK_TICKS_PER_S = 100;

function statusField(pid: number, field: string): number {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Resident set size now, bytes. */
export function rssBytes(pid: number): number {
  return statusField(pid, 'VmRSS');
}

/** Peak resident set size since start or since the last `resetPeakRss`, bytes. */
export function peakRssBytes(pid: number): number {
  return statusField(pid, 'VmHWM');
}

/** Resets VmHWM to the current RSS (write 5 to clear_refs); false when not permitted. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** User + system CPU time consumed so far, seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name, utime and stime are fields 12 and 13 (0-based), i.e. stat fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
}

/** `pid` and all its descendants (nginx's workers, a CLI's daemon child), read from /proc. */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // The process ended while listing.
    }
  }
  const tree: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop() as number;
    tree.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return tree;
}

/** Sum of `read` over `pid` and its descendants; a process that ended meanwhile counts 0. */
function treeSum(pid: number, read: (p: number) => number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      total += read(p);
    } catch {
      // The process ended since the listing.
    }
  }
  return total;
}

/** CPU seconds of `pid` and all its descendants (nginx's workers, a CLI's daemon child). */
export function treeCpuSeconds(pid: number): number {
  return treeSum(pid, cpuSeconds);
}

/** RSS of `pid` and all its descendants, bytes: a peer's footprint however many processes it runs. */
export function treeRssBytes(pid: number): number {
  return treeSum(pid, rssBytes);
}

/** Megabytes (MiB) with one decimal, for tables. */
export function mib(bytes: number): number {
  return Math.round((bytes / 1024 / 1024) * 10) / 10;
}
