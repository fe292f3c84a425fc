import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { serverSentEvents } from '../../cli/commands/requests.js';
import { DashboardFeed } from '../../daemon/dashboard-feed.js';
import type { Health, StatusReport } from '../../workspace/status.js';
import { RequestLog, type RequestEntry } from '../../proxy/request-log.js';
import { waitFor } from '../helpers/git-repo.js';

/** The bound: a change reaches an open page within 250 ms. */
const PUSH_BOUND_MS = 250;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function reportWith(profile: string, health: ReadonlyMap<string, Health>): StatusReport {
  return {
    daemon: { running: true, pid: 1, httpPort: 1, httpsPort: null, version: 'test' },
    worktrees: [{ name: 'x', path: '/x', repo: '/x', branch: null, main: true, profile, profiles: [], services: [], diagnostics: [], memory: { usedBytes: null, profileBytes: 0, fullBytes: 0 } }],
    diagnostics: health.size > 0 ? [{ file: 'probe', line: 0, column: 0, message: [...health.values()].join(','), hint: '', text: '' }] : [],
  };
}

/** A real HTTP server streaming the feed, and a reader of its events. */
async function openFeed(feed: DashboardFeed, query = 'topics=status,requests') {
  const server = http.createServer((req, res) => {
    const params = new URL(req.url ?? '/', 'http://x').searchParams;
    feed.open(res, new Set((params.get('topics') ?? '').split(',') as Array<'status' | 'requests'>), Number(params.get('after')) || 0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const abort = new AbortController();
  cleanups.push(() => new Promise<void>((resolve) => {
    abort.abort();
    feed.close();
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/?${query}`, { signal: abort.signal });
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  const events = serverSentEvents(response.body!)[Symbol.asyncIterator]();
  return async (): Promise<{ event: string; data: string }> => (await events.next()).value as { event: string; data: string };
}

describe('dashboard feed', () => {
  it('pushes a changed report within 250 ms, then once more with probed health, and never an unchanged one', async () => {
    let profile = 'minimal';
    let probes = 0;
    const log = new RequestLog(8);
    const probe = async (): Promise<Map<string, Health>> => {
      probes++;
      return new Map([['ui.x.localhost', 'healthy']]);
    };
    const feed = new DashboardFeed({ report: (health) => reportWith(profile, health), probe, requestLog: log });
    const next = await openFeed(feed);
    const first = await next();
    expect(first.event).toBe('status');
    expect(JSON.parse(first.data).worktrees[0].profile).toBe('minimal');
    expect(JSON.parse((await next()).data)).toEqual([]);
    // The probe that follows an open brings health: one more report.
    expect(JSON.parse((await next()).data).diagnostics[0].message).toBe('healthy');

    profile = 'standard';
    const changedAt = performance.now();
    feed.changed();
    const pushed = await next();
    const elapsedMs = performance.now() - changedAt;
    expect(JSON.parse(pushed.data).worktrees[0].profile).toBe('standard');
    expect(elapsedMs).toBeLessThan(PUSH_BOUND_MS);
    // A change that changes nothing: once its probe is done, the next event is a request, not a report.
    const before = probes;
    feed.changed();
    await waitFor(() => (probes > before ? true : undefined), 5_000, 'the probe after the change');
    await new Promise((resolve) => setImmediate(resolve));
    log.record(performance.now(), 'ui.x.localhost', undefined, 'devproxy', 'GET', '/after', 404, 0, ['Host', 'ui.x.localhost'], undefined);
    const event = await next();
    expect(event.event).toBe('requests');
    expect((JSON.parse(event.data) as RequestEntry[]).map((e) => e.path)).toEqual(['/after']);
  });

  it('streams recorded requests in batches after the seq a client already has', async () => {
    const log = new RequestLog(8);
    const record = (path: string) => log.record(performance.now(), 'ui.x.localhost', undefined, 'devproxy', 'GET', path, 404, 0, ['Host', 'ui.x.localhost'], undefined);
    record('/old');
    record('/seen');
    const feed = new DashboardFeed({ report: (health) => reportWith('minimal', health), probe: async () => new Map(), requestLog: log });
    const next = await openFeed(feed, 'topics=requests&after=1');
    expect((JSON.parse((await next()).data) as RequestEntry[]).map((e) => e.path)).toEqual(['/seen']);
    record('/a');
    record('/b');
    expect((JSON.parse((await next()).data) as RequestEntry[]).map((e) => e.path)).toEqual(['/a', '/b']);
  });
});
