import { describe, expect, it } from 'vitest';
import { routeProgress } from '../../cli/wait-routes.js';
import type { ServiceStatus, WorktreeStatus } from '../../workspace/status.js';

function svc(name: string, route: 'local' | 'remote', desired: 'local' | 'remote', state?: string, problem: string | null = null): ServiceStatus {
  return { name, host: `${name}.x.localhost`, url: '', httpsUrl: null, route, desired, target: null, health: 'not-checked', problem: problem === null ? null : { message: problem, hint: '' }, insecure: false, state: 'starting', ...(state ? { runtime: { state } } : {}) };
}

function worktree(services: ServiceStatus[], reconciling = false, profile = 'standard'): WorktreeStatus {
  return { name: 'x', path: '/x', repo: '/r', branch: 'x', main: false, profile, profiles: [profile], down: false, reconciling, services, diagnostics: [], memory: { usedBytes: null, profileBytes: 0, fullBytes: 0 } };
}

const goal = { profile: 'standard', local: new Set(['api']) };

describe('routeProgress', () => {
  it('is empty until the daemon shows the new profile', () => {
    expect(routeProgress(undefined, goal).size).toBe(0);
    expect(routeProgress(worktree([svc('api', 'remote', 'remote')], false, 'minimal'), goal).size).toBe(0);
  });

  it.each([
    { what: 'desired not applied yet', s: svc('api', 'remote', 'remote'), reconciling: false, want: 'pending' },
    { what: 'starting, still remote (make-before-break)', s: svc('api', 'remote', 'local', 'starting'), reconciling: true, want: 'starting' },
    { what: 'healthy and routed local', s: svc('api', 'local', 'local', 'healthy'), reconciling: true, want: 'ready' },
    { what: 'healthy but the table not rebuilt yet', s: svc('api', 'remote', 'local', 'healthy'), reconciling: true, want: 'starting' },
    { what: 'a failure while still reconciling (may be stale)', s: svc('api', 'local', 'local', 'failed', 'boom'), reconciling: true, want: 'starting' },
    { what: 'failed once the reconcile settled', s: svc('api', 'local', 'local', 'failed', 'boom'), reconciling: false, want: 'failed' },
    { what: 'unhealthy after its timeout', s: svc('api', 'remote', 'local', 'unhealthy'), reconciling: false, want: 'failed' },
    { what: 'no instance and a problem (Docker down)', s: svc('api', 'remote', 'local', undefined, 'Docker is not reachable'), reconciling: false, want: 'failed' },
    { what: 'no instance yet, no problem', s: svc('api', 'remote', 'local'), reconciling: false, want: 'pending' },
  ])('local service: $what → $want', ({ s, reconciling, want }) => {
    expect(routeProgress(worktree([s], reconciling), goal).get('api')).toBe(want);
  });

  it('a remote service is ready as soon as its route is remote, even while the old instance drains', () => {
    const progress = routeProgress(worktree([svc('api', 'local', 'local', 'healthy'), svc('ui', 'remote', 'remote', 'stopping')], true), goal);
    expect(progress.get('ui')).toBe('ready');
  });
});
