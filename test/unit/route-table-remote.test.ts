import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../profiles/validate-config.js';
import { validateProfile } from '../../profiles/validate-profile.js';
import { buildRoutingTable } from '../../router/route-table.js';
import type { RemoteHop, Route, WorktreeInput } from '../../router/types.js';

const YAML = `name: contoso
services:
  ui: { local: { port: 3000 }, remote: https://contoso-ui-dev.azurewebsites.net }
  api:
    local: { port: 8080 }
    remote: https://contoso-api-dev.azurecontainerapps.io/v1
    auth: { headers: { x-functions-key: "\${env:API_KEY}" }, azure: { scope: "api://contoso-api-dev/.default", tenant: contoso.onmicrosoft.com } }
    writes: read-only
    wake: { timeout: 90s }
  login: { remote: "https://login.contoso-dev.example:8443", cors: false, wake: false }
profiles:
  minimal: [ui]
`;

const config = validateConfig(YAML, '/repo/devproxy.yaml').config!;

function worktree(extra: Partial<WorktreeInput> = {}): WorktreeInput {
  return { path: '/w/x', repo: '/repo', branch: 'feature/x', isMain: false, config, diagnostics: [], projectName: 'contoso', ...extra };
}

function hopOf(route: Route | undefined): RemoteHop | undefined {
  return route?.target?.kind === 'remote' ? route.target.hop : undefined;
}

describe('remote hops in the routing table', () => {
  it('precomputes auth (unresolved), write policy, wake and the worktree header per remote route', () => {
    const table = buildRoutingTable([worktree()]);
    const api = hopOf(table.routes.get('api.x.localhost'));
    expect(api?.auth?.headers.get('x-functions-key')).toBe('${env:API_KEY}');
    expect(api?.auth?.azure).toEqual({ scope: 'api://contoso-api-dev/.default', tenant: 'contoso.onmicrosoft.com' });
    expect(api?.readOnly).toBe(true);
    expect(api?.wakeTimeoutMs).toBe(90_000);
    expect(api?.worktreeHeader).toBe('x-devproxy-worktree');

    const login = hopOf(table.routes.get('login.x.localhost'));
    expect(login).toMatchObject({ worktreeHeader: 'x-devproxy-worktree' });
    expect(login?.auth).toBeUndefined();
    expect(login?.readOnly).toBeUndefined();
    expect(login?.wakeTimeoutMs).toBeUndefined();
  });

  it('lists every remote-routed service of the worktree as siblings, shared by its routes, and leaves local routes bare', () => {
    const table = buildRoutingTable([worktree()]);
    const api = hopOf(table.routes.get('api.x.localhost'));
    expect(api?.siblings).toEqual([
      { host: 'api.x.localhost', hostname: 'contoso-api-dev.azurecontainerapps.io', authority: 'contoso-api-dev.azurecontainerapps.io', basePath: '/v1' },
      { host: 'login.x.localhost', hostname: 'login.contoso-dev.example', authority: 'login.contoso-dev.example:8443', basePath: '' },
    ]);
    expect(hopOf(table.routes.get('login.x.localhost'))?.siblings).toBe(api?.siblings);
    expect(table.routes.get('ui.x.localhost')?.target).toEqual({ kind: 'local', origin: 'http://127.0.0.1:3000', port: 3000 });
  });

  it('lets the profile file override the write policy for its worktree only', () => {
    const profile = validateProfile('profile: minimal\nwrites: { api: read-write }\n', '/w/y/.devproxy/profile.yaml', config).profile!;
    const table = buildRoutingTable([worktree(), worktree({ path: '/w/y', branch: 'feature/y', profile })]);
    expect(hopOf(table.routes.get('api.x.localhost'))?.readOnly).toBe(true);
    expect(hopOf(table.routes.get('api.y.localhost'))?.readOnly).toBeUndefined();
  });

  it('uses the configured worktree header name, and sends none when it is false', () => {
    const named = validateConfig(YAML.replace('services:', 'worktreeHeader: X-Team-Worktree\nservices:'), '/repo/devproxy.yaml').config!;
    const off = validateConfig(YAML.replace('services:', 'worktreeHeader: false\nservices:'), '/repo/devproxy.yaml').config!;
    expect(hopOf(buildRoutingTable([worktree({ config: named })]).routes.get('api.x.localhost'))?.worktreeHeader).toBe('x-team-worktree');
    expect(hopOf(buildRoutingTable([worktree({ config: off })]).routes.get('api.x.localhost'))?.worktreeHeader).toBeUndefined();
  });

  it('defaults wake to 60 s and CORS to on', () => {
    const hop = hopOf(buildRoutingTable([worktree()]).routes.get('ui.x.localhost'));
    expect(hop).toBeUndefined();
    const remoteUi = buildRoutingTable([worktree({ profile: { profile: 'minimal', services: new Map([['ui', 'remote']]) } })]).routes.get('ui.x.localhost');
    expect(hopOf(remoteUi)).toMatchObject({ wakeTimeoutMs: 60_000 });
  });

  it('gives every route of the worktree, local or remote, the worktree\'s hosts for CORS, except `cors: false` services', () => {
    const table = buildRoutingTable([worktree()]);
    const hosts = ['ui.x.localhost', 'api.x.localhost', 'login.x.localhost'];
    expect(table.routes.get('ui.x.localhost')?.mode).toBe('local');
    expect([...(table.routes.get('ui.x.localhost')?.corsHosts ?? [])]).toEqual(hosts);
    expect([...(table.routes.get('api.x.localhost')?.corsHosts ?? [])]).toEqual(hosts);
    expect(table.routes.get('login.x.localhost')?.corsHosts).toBeUndefined();
  });
});
