import { describe, expect, it } from 'vitest';
import type { ProfileFile } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { toSlug, worktreeSlug } from '../../hostname.js';
import { buildRoutingTable } from '../../router/route-table.js';
import type { WorktreeInput } from '../../router/types.js';

const config = validateConfig(
  `name: contoso
ca: certs/team-ca.pem
services:
  ui: { local: { port: 3000 }, remote: https://contoso-ui-dev.azurewebsites.net }
  api:
    local: { compose: api, port: 8080 }
    remote: { url: "https://contoso-api-dev.azurecontainerapps.io:8443/v1", ca: /etc/dev-ca.pem }
    health: /healthz
  pipeline: { local: { command: "python -m pipeline" } }
profiles:
  minimal: [ui]
  standard: [ui, api]
  full: [ui, api, pipeline]
`,
  '/repo/devproxy.yaml',
).config!;

function worktree(path: string, extra: Partial<WorktreeInput> = {}): WorktreeInput {
  return { path, repo: '/repo', isMain: path === '/repo', config, diagnostics: [], projectName: 'contoso', ...extra };
}
const profile = (name: string, overrides: Record<string, 'local' | 'remote'> = {}, slug?: string): ProfileFile => ({ profile: name, services: new Map(Object.entries(overrides)), ...(slug ? { name: slug } : {}) });

describe('worktree slugs', () => {
  it.each([
    [{ isMain: false, branch: 'feature/hierarchy-filters', path: '/w/x' }, 'hierarchy-filters'],
    [{ isMain: false, branch: 'Users/ME/Fix_Login!!', path: '/w/x' }, 'fix-login'],
    [{ isMain: false, path: '/work/trees/Detached_Head' }, 'detached-head'],
    [{ isMain: true, branch: 'main', path: '/repo', projectName: 'contoso' }, 'contoso'],
    [{ isMain: false, branch: 'feature/x', path: '/w/x', nameOverride: 'mine' }, 'mine'],
  ])('%o → %s', (input, slug) => expect(worktreeSlug(input)).toBe(slug));

  it('folds to a DNS label of at most 63 characters', () => {
    const slug = toSlug(`feature/${'a'.repeat(70)}`);
    expect(slug).toHaveLength(63);
    expect(toSlug('---')).toBe('');
  });
});

describe('buildRoutingTable', () => {
  it('routes every service of every worktree by its live profile', () => {
    const table = buildRoutingTable([
      worktree('/repo'),
      worktree('/w/feature-x', { branch: 'feature/feature-x', profile: profile('standard') }),
    ]);
    expect([...table.routes.keys()]).toEqual([
      'ui.contoso.localhost', 'api.contoso.localhost', 'pipeline.contoso.localhost',
      'ui.feature-x.localhost', 'api.feature-x.localhost', 'pipeline.feature-x.localhost',
    ]);
    expect(table.routes.get('ui.contoso.localhost')).toMatchObject({ mode: 'local', worktree: 'contoso', service: 'ui', target: { kind: 'local', origin: 'http://127.0.0.1:3000', port: 3000 } });
    expect(table.routes.get('api.contoso.localhost')).toMatchObject({
      mode: 'remote',
      health: '/healthz',
      target: { kind: 'remote', origin: 'https://contoso-api-dev.azurecontainerapps.io:8443', hostname: 'contoso-api-dev.azurecontainerapps.io', authority: 'contoso-api-dev.azurecontainerapps.io:8443', basePath: '/v1', caFiles: ['/repo/certs/team-ca.pem', '/etc/dev-ca.pem'], insecure: false },
    });
    expect(table.worktrees.map((w) => [w.slug, w.profile])).toEqual([['contoso', 'minimal'], ['feature-x', 'standard']]);
  });

  it('keeps a starting local service on its remote until the runtime reports it healthy (make-before-break)', () => {
    const starting = buildRoutingTable([worktree('/w/x', { branch: 'x', profile: profile('standard') })]);
    expect(starting.routes.get('api.x.localhost')).toMatchObject({ mode: 'remote', desired: 'local', target: { kind: 'remote' } });
    const healthy = buildRoutingTable([worktree('/w/x', { branch: 'x', profile: profile('standard'), runtimePorts: new Map([['api', 41001]]) })]);
    expect(healthy.routes.get('api.x.localhost')).toMatchObject({ mode: 'local', target: { kind: 'local', port: 41001 } });
    expect(healthy.routes.get('api.x.localhost')?.desired).toBeUndefined();
  });

  it('explains a route that cannot be served instead of dropping it', () => {
    const table = buildRoutingTable([worktree('/w/x', { branch: 'x', profile: profile('minimal') }), worktree('/w/y', { branch: 'y', profile: profile('full') })]);
    expect(table.routes.get('pipeline.x.localhost')?.problem).toEqual({
      message: 'service "pipeline" of worktree "x" is remote in profile "minimal" but has no remote endpoint',
      hint: 'run it locally: `devproxy use minimal --service pipeline=local`, or add `remote:` to services.pipeline in devproxy.yaml',
    });
    expect(table.routes.get('pipeline.y.localhost')).toMatchObject({ mode: 'local', problem: { message: 'service "pipeline" of worktree "y" is starting locally and has no remote to serve meanwhile' } });
  });

  it('applies per-service overrides and the name override', () => {
    const table = buildRoutingTable([worktree('/w/x', { branch: 'feature/x', profile: profile('minimal', { ui: 'remote', api: 'local' }, 'renamed') , runtimePorts: new Map([['api', 41002]]) })]);
    expect(table.routes.get('ui.renamed.localhost')?.mode).toBe('remote');
    expect(table.routes.get('api.renamed.localhost')?.mode).toBe('local');
    expect(table.routes.has('ui.x.localhost')).toBe(false);
  });

  it('routes the first of two worktrees with one slug and names both with the fix', () => {
    const table = buildRoutingTable([worktree('/w/b', { branch: 'team-b/login' }), worktree('/w/a', { branch: 'team-a/login', profile: profile('minimal', { ui: 'remote' }) })]);
    expect(table.routes.get('ui.login.localhost')?.mode).toBe('remote');
    expect(table.diagnostics).toHaveLength(1);
    expect(table.diagnostics[0]).toMatchObject({ message: 'worktrees /w/a and /w/b both have the hostname slug "login"; only the first is routed', hint: 'give one of them another name with `name: <slug>` in its .devproxy/profile.yaml' });
    expect(table.worktrees.every((w) => w.diagnostics.length === 1)).toBe(true);
  });

  it('shows a worktree without a usable config, with its diagnostics and no routes', () => {
    const diagnostic = { file: '/w/x/devproxy.yaml', line: 2, column: 1, message: 'bad', hint: 'fix' };
    const { config: _none, ...rest } = worktree('/w/x', { branch: 'x', diagnostics: [diagnostic] });
    const table = buildRoutingTable([rest]);
    expect(table.routes.size).toBe(0);
    expect(table.worktrees[0]).toMatchObject({ slug: 'x', diagnostics: [diagnostic], hosts: [] });
  });
});

describe('a failed local instance', () => {
  const failure = { message: 'container of "api" in worktree "x" exited with code 1', hint: 'read `devproxy logs api`' };
  it('answers its failure instead of silently serving the remote', () => {
    const table = buildRoutingTable([worktree('/w/x', { branch: 'x', profile: profile('standard'), runtimeFailures: new Map([['api', failure]]) })]);
    expect(table.routes.get('api.x.localhost')).toMatchObject({ mode: 'local', problem: failure });
    expect(table.routes.get('api.x.localhost')?.target).toBeUndefined();
  });
  it('falls back to the remote when the service says fallback: remote', () => {
    const withFallback = { ...config, services: new Map([...config.services].map(([name, s]) => [name, name === 'api' ? { ...s, fallback: 'remote' as const } : s])) };
    const table = buildRoutingTable([worktree('/w/x', { branch: 'x', config: withFallback, profile: profile('standard'), runtimeFailures: new Map([['api', failure]]) })]);
    expect(table.routes.get('api.x.localhost')).toMatchObject({ mode: 'remote', desired: 'local', target: { kind: 'remote' } });
  });
});
