import { describe, expect, it } from 'vitest';
import { buildStatus } from '../../workspace/status.js';
import type { Route } from '../../router/types.js';
import { local, remote, route, tableOf } from '../helpers/routes.js';

const DAEMON = { running: true, pid: 1, httpPort: 7080, httpsPort: null, version: 'test' };
const REMOTE = remote({ origin: 'https://api-dev.example.com', hostname: 'api-dev.example.com' });

function stateOf(r: Route, runtime?: Record<string, unknown>): string {
  const report = buildStatus(tableOf(r), DAEMON, new Map(), () => runtime);
  return report.worktrees[0]!.services[0]!.state;
}

describe('the route state the dashboard shows', () => {
  it.each([
    ['local', route('api.x.localhost', local(5173)), undefined],
    ['remote', route('api.x.localhost', REMOTE), undefined],
    ['starting', { ...route('api.x.localhost', REMOTE), desired: 'local' } as Route, { state: 'starting' }],
    ['fallback', { ...route('api.x.localhost', REMOTE), desired: 'local' } as Route, { state: 'failed' }],
    ['failed', route('api.x.localhost', undefined, { problem: { message: 'the local process failed', hint: 'restart it' } }), { state: 'failed' }],
  ])('%s', (expected, r, runtime) => {
    expect(stateOf(r, runtime)).toBe(expected);
  });
});
