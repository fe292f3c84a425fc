/** Summarises a V8 `.cpuprofile` (from `node --cpu-prof`) into the functions that cost most. */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** One function's share of the sampled time. */
export interface HotFunction {
  /** `name (file:line)`, file shortened to what follows node_modules/ or dist/. */
  name: string;
  /** Self time as a percentage of busy (non-idle) samples. */
  selfPct: number;
}

/** Where a profile's busy time went. */
export interface ProfileSummary {
  file: string;
  /** Share of all samples that were idle, %. */
  idlePct: number;
  /** Share of busy samples in garbage collection, %. */
  gcPct: number;
  topFunctions: HotFunction[];
  /** Busy time grouped by source (a package, node internals, or one of devproxy's files), %. */
  bySource: HotFunction[];
  /** devproxy's own functions by inclusive time (themselves and all they call), %. */
  devproxyInclusive: HotFunction[];
}

function shortUrl(url: string): string {
  if (url === '') return '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.lastIndexOf('/dist/');
  if (dist >= 0) return url.slice(dist + '/dist/'.length);
  return url.replace(/^file:\/\//, '');
}

function source(url: string): string {
  const short = shortUrl(url);
  if (short.startsWith('node:')) return short.split('/').slice(0, 2).join('/');
  if (url.includes('node_modules/')) return short.split('/')[0] ?? short;
  return short;
}

/** Reads a profile and ranks functions by self time among non-idle samples. */
export function summariseProfile(file: string, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[] };
  const selfByName = new Map<string, number>();
  const bySource = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    total += hits;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idle += hits;
      continue;
    }
    if (functionName === '(garbage collector)') gc += hits;
    const name = url ? `${functionName || '(anonymous)'} (${shortUrl(url)}:${lineNumber + 1})` : functionName || '(anonymous)';
    selfByName.set(name, (selfByName.get(name) ?? 0) + hits);
    const src = url ? source(url) : functionName;
    bySource.set(src, (bySource.get(src) ?? 0) + hits);
  }
  const busy = Math.max(1, total - idle);
  const inclusive = inclusiveTimes(profile.nodes, (url) => !url.includes('node_modules/') && url.includes('/dist/'));
  const rank = (m: Map<string, number>): HotFunction[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, hits]) => ({ name, selfPct: Math.round((hits / busy) * 1000) / 10 }));
  return {
    file,
    idlePct: Math.round((idle / Math.max(1, total)) * 1000) / 10,
    gcPct: Math.round((gc / busy) * 1000) / 10,
    topFunctions: rank(selfByName),
    bySource: rank(bySource),
    devproxyInclusive: rank(inclusive),
  };
}

/** Inclusive hits per function whose file `mine` accepts; a recursive call is counted once. */
function inclusiveTimes(nodes: ProfileNode[], mine: (url: string) => boolean): Map<string, number> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const childIds = new Set(nodes.flatMap((n) => n.children ?? []));
  const result = new Map<string, number>();
  const active = new Set<string>();
  const visit = (node: ProfileNode): number => {
    const { functionName, url, lineNumber } = node.callFrame;
    const name = mine(url) ? `${functionName || '(anonymous)'} (${shortUrl(url)}:${lineNumber + 1})` : undefined;
    const entered = name !== undefined && !active.has(name);
    if (entered) active.add(name);
    let hits = node.hitCount ?? 0;
    for (const id of node.children ?? []) {
      const child = byId.get(id);
      if (child) hits += visit(child);
    }
    if (entered) {
      active.delete(name);
      result.set(name, (result.get(name) ?? 0) + hits);
    }
    return hits;
  };
  for (const node of nodes) if (!childIds.has(node.id)) visit(node);
  return result;
}
