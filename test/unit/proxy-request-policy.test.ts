import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { budgetFromLimit } from '../../proxy/connection-limits.js';
import { upstreamPath } from '../../proxy/proxy-core.js';
import { mayLendCredentials } from '../../proxy/remote-hop.js';
import { UpstreamShares, type ShareWaiter } from '../../proxy/upstream-share.js';
import { isWebSocketUpgrade } from '../../proxy/websocket.js';

const HOSTS: ReadonlySet<string> = new Set(['api.feature-x.localhost', 'ui.feature-x.localhost']);
const HTTP = 7080;
const HTTPS = 7443;

describe('mayLendCredentials: remote auth only for the worktree’s own pages', () => {
  const cases: Array<[string, string | undefined, string | undefined, boolean]> = [
    ['no Origin, no Sec-Fetch-Site (curl, server code)', undefined, undefined, true],
    ['no Origin, same-site', undefined, 'same-site', true],
    ['no Origin, typed in the address bar', undefined, 'none', true],
    ['no Origin, cross-site', undefined, 'cross-site', false],
    ['no Origin, CROSS-SITE in capitals', undefined, 'CROSS-SITE', false],
    ['a sibling service over http', 'http://ui.feature-x.localhost:7080', undefined, true],
    ['a sibling service over https', 'https://ui.feature-x.localhost:7443', undefined, true],
    ['upper-case host', 'http://UI.feature-x.localhost:7080', undefined, true],
    ['the landing page', 'http://localhost:7080', undefined, true],
    ['the landing page over https', 'https://localhost:7443', undefined, true],
    ['a sibling but cross-site by fetch metadata', 'http://ui.feature-x.localhost:7080', 'cross-site', false],
    ['a foreign site', 'https://evil.example', undefined, false],
    ['null', 'null', undefined, false],
    ['another worktree', 'http://ui.other.localhost:7080', undefined, false],
    ['our host, wrong port', 'http://ui.feature-x.localhost:3000', undefined, false],
    ['our host, wrong scheme for the port', 'https://ui.feature-x.localhost:7080', undefined, false],
    ['our host as a prefix of another', 'http://ui.feature-x.localhost.evil.example:7080', undefined, false],
    ['userinfo trick', 'http://ui.feature-x.localhost:7080@evil.example', undefined, false],
    ['an origin with a path', 'http://ui.feature-x.localhost:7080/x', undefined, false],
  ];
  for (const [what, origin, site, expected] of cases) {
    it(`${what} → ${expected ? 'lent' : 'withheld'}`, () => {
      expect(mayLendCredentials(origin, site, HOSTS, HTTP, HTTPS)).toBe(expected);
    });
  }

  it('without worktree hosts only requests from no page (or the landing page) get credentials', () => {
    expect(mayLendCredentials('http://ui.feature-x.localhost:7080', undefined, undefined, HTTP, HTTPS)).toBe(false);
    expect(mayLendCredentials('http://localhost:7080', undefined, undefined, HTTP, HTTPS)).toBe(true);
    expect(mayLendCredentials(undefined, undefined, undefined, HTTP, HTTPS)).toBe(true);
  });
});

describe('upstreamPath', () => {
  it('keeps the asterisk form of OPTIONS * without the base path', () => {
    expect(upstreamPath('OPTIONS', '*', '/v1')).toBe('*');
  });
  it('prefixes origin-form paths and reduces absolute-form targets to their path', () => {
    expect(upstreamPath('GET', '/x?y=1', '/v1')).toBe('/v1/x?y=1');
    expect(upstreamPath('GET', 'http://api.feature-x.localhost/x', '')).toBe('/x');
  });
  it('a * target on another method is not forwarded as *', () => {
    expect(upstreamPath('GET', '*', '/v1')).toBe('/v1/');
  });
});

describe('isWebSocketUpgrade', () => {
  const upgrade = (method: string, value: string | undefined): boolean => isWebSocketUpgrade({ method, headers: value === undefined ? {} : { upgrade: value } } as IncomingMessage);
  it('only a GET asking for websocket', () => {
    expect(upgrade('GET', 'websocket')).toBe(true);
    expect(upgrade('GET', 'WebSocket')).toBe(true);
    expect(upgrade('GET', 'foo, websocket')).toBe(true);
    for (const method of ['DELETE', 'PUT', 'POST', 'PATCH', 'OPTIONS', 'HEAD']) expect(upgrade(method, 'websocket'), method).toBe(false);
    expect(upgrade('GET', 'h2c')).toBe(false);
    expect(upgrade('GET', undefined)).toBe(false);
  });
});

describe('budgetFromLimit', () => {
  it('keeps a reserve and splits the rest between clients and upstream requests', () => {
    expect(budgetFromLimit(256)).toEqual({ clientConnections: 96, upstreamRequests: 96 });
    expect(budgetFromLimit(1_048_576)).toEqual({ clientConnections: 524_256, upstreamRequests: 524_256 });
  });
  it('never goes below one, and is unbounded when the limit is unknown', () => {
    expect(budgetFromLimit(10)).toEqual({ clientConnections: 1, upstreamRequests: 1 });
    expect(budgetFromLimit(Number.POSITIVE_INFINITY).clientConnections).toBe(Number.POSITIVE_INFINITY);
  });
});

/** A waiter that records when it was admitted. */
function waiter(log: string[], name: string): ShareWaiter {
  return { admitted: () => log.push(name) };
}

describe('UpstreamShares', () => {
  it('one client gets at most its share; the rest of its requests wait for its own slots', () => {
    const shares = new UpstreamShares(100, 2);
    const a = {};
    const log: string[] = [];
    expect(shares.acquire(a, waiter(log, 'a1'))).toBe(true);
    expect(shares.acquire(a, waiter(log, 'a2'))).toBe(true);
    expect(shares.acquire(a, waiter(log, 'a3'))).toBe(false);
    // Another client is not held up by a's queue.
    expect(shares.acquire({}, waiter(log, 'b1'))).toBe(true);
    shares.release(a);
    expect(log).toEqual(['a3']);
  });

  it('when the total is reached, waiting clients take turns', () => {
    const shares = new UpstreamShares(2, 10);
    const a = {};
    const b = {};
    const log: string[] = [];
    expect(shares.acquire(a, waiter(log, 'a1'))).toBe(true);
    expect(shares.acquire(a, waiter(log, 'a2'))).toBe(true);
    expect(shares.acquire(a, waiter(log, 'a3'))).toBe(false);
    expect(shares.acquire(a, waiter(log, 'a4'))).toBe(false);
    expect(shares.acquire(b, waiter(log, 'b1'))).toBe(false);
    shares.release(a);
    shares.release(a);
    expect(log).toEqual(['a3', 'b1']);
    shares.release(b);
    expect(log).toEqual(['a3', 'b1', 'a4']);
  });

  it('a cancelled waiter is never admitted, and a release without a slot changes nothing', () => {
    const shares = new UpstreamShares(1, 1);
    const a = {};
    const log: string[] = [];
    expect(shares.acquire(a, waiter(log, 'a1'))).toBe(true);
    const gone = waiter(log, 'a2');
    expect(shares.acquire(a, gone)).toBe(false);
    shares.cancel(a, gone);
    shares.release(a);
    shares.release(a);
    expect(log).toEqual([]);
    expect(shares.acquire(a, waiter(log, 'a3'))).toBe(true);
  });
});
