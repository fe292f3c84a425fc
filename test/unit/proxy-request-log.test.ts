import { describe, expect, it } from 'vitest';
import { REDACTED } from '../../proxy/log-redaction.js';
import { MAX_ENTRY_CHARS, RequestLog, type RequestEntry } from '../../proxy/request-log.js';
import type { Route, Target } from '../../router/types.js';
import { local, remote, route } from '../helpers/routes.js';

const API = route('api.feature-x.localhost', local(5173));

function recordOne(log: RequestLog, path: string, status = 200, extra: { route?: Route; requestHeaders?: string[]; responseHeaders?: string[] } = {}): void {
  const r = extra.route ?? API;
  log.record(performance.now(), r.host, r, r.target?.kind ?? 'devproxy', 'GET', path, status, 2, extra.requestHeaders ?? ['Host', r.host], extra.responseHeaders ?? ['content-type', 'text/plain']);
}

describe('RequestLog', () => {
  it('keeps the last `capacity` exchanges, oldest first, and serves the ones after a seq', () => {
    const log = new RequestLog(4);
    for (let i = 1; i <= 6; i++) recordOne(log, `/r${i}`);
    expect(log.entries().map((e) => e.path)).toEqual(['/r3', '/r4', '/r5', '/r6']);
    expect(log.entries(4).map((e) => e.seq)).toEqual([5, 6]);
    expect(log.entries(0, 2).map((e) => e.path)).toEqual(['/r5', '/r6']);
    expect(log.detail(2)).toBeUndefined();
    expect(log.stats()).toMatchObject({ capacity: 4, size: 4, recorded: 6 });
    const entry = log.entries(5)[0] as RequestEntry;
    expect(entry).toMatchObject({ worktree: 'feature-x', service: 'api', host: 'api.feature-x.localhost', method: 'GET', status: 200, route: 'local', bytes: 2 });
    expect(Number.isNaN(Date.parse(entry.time))).toBe(false);
    expect(entry.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('redacts Authorization, cookies and the headers the remote hop injects', () => {
    const target = remote({ origin: 'https://127.0.0.1:9', hostname: 'api-dev.example.localhost' }) as Extract<Target, { kind: 'remote' }>;
    target.hop = { auth: { headers: new Map([['x-functions-key', '${env:KEY}']]), azure: { scope: 'api://x/.default' } } };
    const remoteRoute = route('api.feature-x.localhost', target);
    const log = new RequestLog(8);
    recordOne(log, '/me', 200, {
      route: remoteRoute,
      requestHeaders: ['Host', 'api.feature-x.localhost', 'Authorization', 'Bearer secret', 'Cookie', 'sid=1', 'X-Functions-Key', 'client-sent', 'Accept', 'text/html'],
      responseHeaders: ['set-cookie', 'sid=2', 'content-type', 'text/html'],
    });
    const detail = log.detail(1)!;
    expect(detail.requestHeaders).toEqual([
      ['Host', 'api.feature-x.localhost'],
      ['Authorization', REDACTED],
      ['Cookie', REDACTED],
      ['X-Functions-Key', REDACTED],
      ['Accept', 'text/html'],
    ]);
    expect(detail.injectedHeaders).toEqual([['x-functions-key', REDACTED], ['authorization', REDACTED]]);
    expect(detail.responseHeaders).toEqual([['set-cookie', REDACTED], ['content-type', 'text/html']]);
    expect(JSON.stringify(detail)).not.toMatch(/secret|sid=|client-sent/);
  });

  it('hides API keys a client sends itself, on a local route, and secret query values in every path it shows', () => {
    const log = new RequestLog(8);
    const listened: RequestEntry[] = [];
    log.subscribe((batch) => listened.push(...batch));
    recordOne(log, '/api/run?code=fn-code-1&sig=sas-sig-2&sv=2024-01-01&name=ok', 200, {
      requestHeaders: ['Host', 'api.feature-x.localhost', 'x-functions-key', 'fn-key-3', 'Ocp-Apim-Subscription-Key', 'apim-key-4', 'x-api-key', 'api-key-5', 'Accept', 'text/html'],
    });
    log.flush();
    const detail = log.detail(1)!;
    expect(detail.requestHeaders).toEqual([
      ['Host', 'api.feature-x.localhost'],
      ['x-functions-key', REDACTED],
      ['Ocp-Apim-Subscription-Key', REDACTED],
      ['x-api-key', REDACTED],
      ['Accept', 'text/html'],
    ]);
    const shown = `/api/run?code=${REDACTED}&sig=${REDACTED}&sv=2024-01-01&name=ok`;
    expect(detail.path).toBe(shown);
    expect(log.entries()[0]!.path).toBe(shown);
    expect(listened.map((e) => e.path)).toEqual([shown]);
    expect(JSON.stringify([detail, log.entries(), listened])).not.toMatch(/fn-code-1|sas-sig-2|fn-key-3|apim-key-4|api-key-5/);
  });

  it('keeps its own copy of the headers: arrays the exchange reuses or changes later do not alter the entry', () => {
    const log = new RequestLog(4);
    const requestHeaders = ['Host', 'api.feature-x.localhost', 'Accept', 'text/html'];
    const responseHeaders = ['content-type', 'text/plain', 'x-devproxy-route', 'local'];
    recordOne(log, '/a', 200, { requestHeaders, responseHeaders });
    requestHeaders[3] = 'changed';
    responseHeaders.length = 0;
    expect(log.detail(1)).toMatchObject({
      requestHeaders: [['Host', 'api.feature-x.localhost'], ['Accept', 'text/html']],
      responseHeaders: [['content-type', 'text/plain'], ['x-devproxy-route', 'local']],
    });
  });

  it('shows no headers, marked omitted, rather than misaligned ones if a field held a line feed (a secret never lands in a name)', () => {
    const log = new RequestLog(4);
    recordOne(log, '/a', 200, { requestHeaders: ['X-Odd', 'a\nCookie', 'Cookie', 'sid=1'], responseHeaders: ['content-type', 'text/plain'] });
    const detail = log.detail(1)!;
    expect(detail.requestHeaders).toEqual([]);
    expect(detail.responseHeaders).toEqual([['content-type', 'text/plain']]);
    expect(detail.headersOmitted).toBe(true);
    expect(JSON.stringify(detail)).not.toContain('sid=1');
  });

  it('stays within its memory bound however large the headers and paths are', () => {
    const log = new RequestLog(100);
    const huge = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 1000; i++) recordOne(log, `/${huge}`, 200, { requestHeaders: ['Host', 'a', 'x-big', huge] });
    const stats = log.stats();
    expect(stats.approxBytes).toBeLessThanOrEqual(stats.maxBytes);
    expect(log.detail(1000)).toMatchObject({ headersOmitted: true, requestHeaders: [] });
    expect(log.entries(999)[0]!.path.length).toBeLessThan(MAX_ENTRY_CHARS);
    // Small exchanges replacing big ones give the memory back.
    for (let i = 0; i < 100; i++) recordOne(log, '/small');
    expect(log.stats().approxBytes).toBeLessThan(stats.approxBytes);
  });

  it('hands listeners one batch per turn, and records nothing while paused', async () => {
    const log = new RequestLog(16);
    const batches: RequestEntry[][] = [];
    const unsubscribe = log.subscribe((batch) => batches.push(batch));
    recordOne(log, '/a');
    recordOne(log, '/b');
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches.map((b) => b.map((e) => e.path))).toEqual([['/a', '/b']]);
    log.recording = false;
    recordOne(log, '/paused');
    log.recording = true;
    unsubscribe();
    recordOne(log, '/c');
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toHaveLength(1);
    expect(log.entries().map((e) => e.path)).toEqual(['/a', '/b', '/c']);
  });
});
