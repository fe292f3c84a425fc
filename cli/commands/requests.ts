import type { RequestEntry } from '../../proxy/request-log.js';
import { DevproxyError } from '../../errors.js';
import { formatMemory } from '../../runtime/memory.js';
import { fetchDaemon } from '../context.js';
import { renderTable } from '../format.js';

export interface RequestsOptions {
  /** Keep printing requests as they happen. */
  follow?: boolean;
  /** One JSON array (or, with --follow, one JSON object per line). */
  json?: boolean;
  /** How many of the most recent requests to print first. */
  limit?: string;
}

const notRunning = () => new DevproxyError('DEVPROXY_ERR_DAEMON_NOT_RUNNING', 'devproxy is not running, so it has recorded no requests');

/**
 * `devproxy requests [--follow] [--json]`: the daemon's recent-requests log, the same data the
 * dashboard lists: time, worktree, service, method, path, status, duration, route, bytes.
 */
export async function requests(opts: RequestsOptions): Promise<void> {
  const limit = opts.limit === undefined ? undefined : Number(opts.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) throw new DevproxyError('DEVPROXY_ERR_USAGE', `--limit takes a whole number, not "${opts.limit}"`);
  const response = await fetchDaemon(`/api/requests${limit === undefined ? '' : `?limit=${limit}`}`);
  if (!response) throw notRunning();
  const { entries } = (await response.json()) as { entries: RequestEntry[] };
  if (!opts.follow) {
    if (opts.json) console.log(JSON.stringify(entries, null, 2));
    else if (entries.length === 0) console.log('no requests recorded yet');
    else console.log(renderTable([HEADER, ...entries.map(row)]));
    return;
  }
  let last = entries.at(-1)?.seq ?? 0;
  const print = (batch: RequestEntry[]): void => {
    for (const entry of batch) {
      if (entry.seq <= last) continue;
      last = entry.seq;
      console.log(opts.json ? JSON.stringify(entry) : row(entry).join('  '));
    }
  };
  if (opts.json) for (const entry of entries) console.log(JSON.stringify(entry));
  else console.log(renderTable([HEADER, ...entries.map(row)]));
  const stream = await fetchDaemon(`/api/events?topics=requests&after=${last}`);
  if (!stream?.body) throw notRunning();
  for await (const event of serverSentEvents(stream.body)) {
    if (event.event === 'requests') print(JSON.parse(event.data) as RequestEntry[]);
  }
}

const HEADER = ['TIME', 'WORKTREE', 'SERVICE', 'METHOD', 'PATH', 'STATUS', 'DURATION', 'ROUTE', 'BYTES'];

function row(e: RequestEntry): string[] {
  return [e.time.slice(11, 23), e.worktree || '-', e.service || '-', e.method, e.path, e.status === 0 ? 'aborted' : String(e.status), `${e.durationMs} ms`, e.route, formatMemory(e.bytes)];
}

/** Parses a text/event-stream body into its events (`event:` and `data:` lines; comments skipped). */
export async function* serverSentEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) yield { event, data: data.join('\n') };
    }
  }
}
