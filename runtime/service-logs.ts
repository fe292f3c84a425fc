/**
 * The output of a local service, as `devproxy logs` shows it: a process's log file or a
 * container's logs, its last lines or followed as it comes. Which source a service has is
 * decided by a pure function; reading is I/O.
 */
import { DevproxyError } from '../errors.js';
import type { LocalDefinition } from '../profiles/schema.js';
import { lastLines } from './compose.js';
import type { DockerObserver } from './docker-observer.js';
import { sleep } from './health.js';
import type { Instance } from './instance.js';
import { readLogTail } from './log-file.js';
import { unknownWorktree } from './plan.js';

/** How often a followed log file is checked for new output. */
const FOLLOW_POLL_MS = 250;

/** Where a service's output is. */
export type LogSource = { kind: 'file'; file: string } | { kind: 'container'; containerId: string };

/** What the runtime knows of a service when its logs are asked for. */
export interface LogFacts {
  worktreePath: string;
  service: string;
  /** Its tracked instance, if any. */
  inst?: Instance;
  /** Its `local:` definition in the worktree's config, if the worktree is tracked. */
  local?: LocalDefinition;
  /** The worktree's slug, if the worktree is tracked. */
  slug?: string;
}

/**
 * The service's log source (pure): its process's log file (or the file it would write), its
 * instance's container, or undefined when only the engine knows the container. Throws for a
 * user-run port service (its output is where the user started it) and an unknown worktree.
 */
export function logSourceOf(facts: LogFacts, logFile: (slug: string, service: string) => string): LogSource | undefined {
  const { inst, local, service } = facts;
  const kind = inst?.kind ?? local?.kind;
  if (kind === 'port') {
    throw new DevproxyError('DEVPROXY_ERR_USAGE', `${service} runs outside devproxy (local port ${local?.kind === 'port' ? local.port : '?'}); it has no logs here`, {
      hint: 'read its output where you started it',
    });
  }
  if (kind === 'command' || inst?.process) {
    const slug = inst?.process?.slug ?? facts.slug;
    if (!slug) throw unknownWorktree(facts.worktreePath);
    return { kind: 'file', file: inst?.process?.logFile ?? logFile(slug, service) };
  }
  return inst?.containerId ? { kind: 'container', containerId: inst.containerId } : undefined;
}

/** The error for a service with no container to read logs from. */
export function noLocalInstance(worktreePath: string, service: string): DevproxyError {
  return new DevproxyError('DEVPROXY_ERR_UNKNOWN_SERVICE', `${service} has no local instance in ${worktreePath}`, {
    hint: 'make it local with `devproxy use <profile>` first',
  });
}

/** The last `lines` lines of a source. */
export async function readLogs(source: LogSource, lines: number, observer: Pick<DockerObserver, 'lastLogLines'>): Promise<string> {
  if (source.kind === 'file') return lastLines((await readLogTail(source.file)).text, lines).join('\n');
  return (await observer.lastLogLines(source.containerId, lines)).join('\n');
}

/** A source's last `lines` lines, then new output as it comes, until `signal` aborts (or the container stops). */
export async function* followLogs(source: LogSource, opts: { lines: number; signal?: AbortSignal }, observer: Pick<DockerObserver, 'followLogs'>): AsyncIterable<string> {
  if (source.kind === 'file') {
    const { text, size } = await readLogTail(source.file);
    const initial = lastLines(text, opts.lines);
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
  const out = await observer.followLogs(source.containerId, opts.lines);
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
