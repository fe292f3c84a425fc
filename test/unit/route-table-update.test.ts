import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Diagnostic, ProfileFile, ProjectConfig } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { buildRoutingTable, updateRoutingTable, type FullBuildReason, type RoutingBuild } from '../../router/route-table.js';
import type { RoutingTable, WorktreeInput } from '../../router/types.js';

function config(yaml: string): ProjectConfig {
  const result = validateConfig(yaml, '/repo/devproxy.yaml');
  if (!result.config) throw new Error(result.errors.map((e) => e.message).join('; '));
  return result.config;
}

const contoso = config(`name: contoso
ca: certs/team-ca.pem
services:
  ui: { local: { port: 3000 }, remote: https://contoso-ui-dev.azurewebsites.net, memory: 256MB }
  api:
    local: { compose: api, port: 8080 }
    remote: { url: "https://contoso-api-dev.azurecontainerapps.io:8443/v1", ca: /etc/dev-ca.pem }
    health: /healthz
    writes: read-only
    auth: { headers: { x-api-key: "\${env:API_KEY}" } }
  pipeline: { local: { command: "python -m pipeline" }, cors: false }
profiles:
  minimal: [ui]
  standard: [ui, api]
  full: [ui, api, pipeline]
`);
/** The same project after an edit: a service less, one more, another remote. */
const contosoEdited = config(`name: contoso
worktreeHeader: false
services:
  ui: { local: { port: 3001 }, remote: https://contoso-ui-next.azurewebsites.net, wake: false }
  api: { local: { port: 8080 }, remote: https://contoso-api-dev.azurecontainerapps.io, fallback: remote }
  docs: { remote: https://docs-dev.example.com }
profiles:
  minimal: []
  standard: [ui, api]
default: standard
`);
const other = config(`name: other
services:
  web: { local: { port: 5000 }, remote: https://other-web-dev.example.com }
profiles:
  minimal: []
  full: [web]
`);
/** Names the validator refuses (a dot in a service name): with a dotted slug (`x.b`), hosts of two worktrees can coincide. */
const dotted: ProjectConfig = { ...other, services: new Map([...other.services, ['api.x', { name: 'api.x', remote: { url: 'https://dotted-dev.example.com', insecure: false } }]]) };

const profile = (name: string, extra: Partial<ProfileFile> = {}): ProfileFile => ({ profile: name, services: new Map(), ...extra });
const diagnostic: Diagnostic = { file: '/w/x/.devproxy/profile.yaml', line: 1, column: 1, message: 'unknown profile "nope"', hint: 'use one of minimal, standard' };

function worktree(path: string, extra: Partial<WorktreeInput> = {}): WorktreeInput {
  return { path, repo: '/repo', isMain: path === '/repo', config: contoso, diagnostics: [], projectName: 'contoso', ...extra };
}

/** The full build of `inputs`, and the table and key order the update must equal. */
function expectSameAsFullBuild(table: RoutingTable, inputs: readonly WorktreeInput[]): void {
  const full = buildRoutingTable(inputs);
  expect(table).toStrictEqual(full);
  // toStrictEqual compares maps by content; the landing page lists routes in the map's order.
  expect([...table.routes.keys()]).toEqual([...full.routes.keys()]);
}

describe('updateRoutingTable', () => {
  const start = [
    worktree('/repo', { branch: 'main', profile: profile('standard') }),
    worktree('/w/x', { branch: 'feature/x', profile: profile('minimal') }),
    worktree('/w/y', { branch: 'y', profile: profile('full'), runtimePorts: new Map([['api', 41001]]) }),
  ];

  it('builds only the worktree whose profile flipped, and reuses every other route as it was', () => {
    const first = updateRoutingTable(undefined, start);
    expect(first.full).toBe('first');
    const flipped = start.map((input) => (input.path === '/w/x' ? { ...input, profile: profile('standard', { services: new Map([['pipeline', 'local']]) }) } : input));
    const next = updateRoutingTable(first, flipped);
    expect(next.full).toBeUndefined();
    expect(next.rebuilt).toEqual(['/w/x']);
    expectSameAsFullBuild(next.table, flipped);
    expect(next.table.routes.get('api.x.localhost')).toMatchObject({ mode: 'remote', desired: 'local' });
    expect(next.table.routes.get('api.y.localhost')).toBe(first.table.routes.get('api.y.localhost'));
    expect(next.table.worktrees[0]).toBe(first.table.worktrees[0]);
    // The previous table is left as it was: requests in flight may hold it.
    expect(first.table.routes.get('api.x.localhost')?.desired).toBeUndefined();
    expectSameAsFullBuild(first.table, start);
  });

  it('takes runtime facts rebuilt afresh with the same content as unchanged', () => {
    const first = updateRoutingTable(undefined, start);
    const again = start.map((input) => (input.runtimePorts ? { ...input, runtimePorts: new Map(input.runtimePorts), runtimeFailures: new Map() } : input));
    const withFailure = (message: string) => start.map((input) => (input.path === '/w/x' ? { ...input, runtimeFailures: new Map([['ui', { message, hint: 'read its log' }]]) } : input));
    expect(updateRoutingTable(first, again).rebuilt).toEqual(['/w/y']);
    const failed = updateRoutingTable(first, withFailure('exited'));
    expect(failed.rebuilt).toEqual(['/w/x']);
    expect(updateRoutingTable(failed, withFailure('exited')).rebuilt).toEqual([]);
    expect(updateRoutingTable(failed, withFailure('exited with 1')).rebuilt).toEqual(['/w/x']);
  });

  it.each<[string, (inputs: WorktreeInput[]) => WorktreeInput[], FullBuildReason]>([
    ['a worktree added', (inputs) => [...inputs, worktree('/w/z', { branch: 'z' })], 'worktrees'],
    ['a worktree removed', (inputs) => inputs.slice(0, 2), 'worktrees'],
    ['a worktree made the main checkout', (inputs) => inputs.map((i) => (i.path === '/w/y' ? { ...i, isMain: true } : i)), 'worktrees'],
    ['a branch renamed (its hosts move)', (inputs) => inputs.map((i) => (i.path === '/w/y' ? { ...i, branch: 'y2' } : i)), 'slug'],
    ['a profile name that another worktree has (a clash starts)', (inputs) => inputs.map((i) => (i.path === '/w/y' ? { ...i, profile: profile('full', { name: 'x' }) } : i)), 'slug'],
    ['a service name with a dot', (inputs) => inputs.map((i) => (i.path === '/w/y' ? { ...i, config: dotted } : i)), 'host'],
  ])('builds the whole table when %s', (_what, edit, reason) => {
    const first = updateRoutingTable(undefined, start);
    const inputs = edit(start);
    const next = updateRoutingTable(first, inputs);
    expect(next.full).toBe(reason);
    expectSameAsFullBuild(next.table, inputs);
  });

  it('routes a host two worktrees make (names the validator refuses) as the full build does', () => {
    // `api.x` of slug `b` and `api` of slug `x.b` are both api.x.b.localhost: the later worktree's route wins.
    const both = [worktree('/w/a', { branch: 'b', config: dotted }), worktree('/w/b', { branch: 'c', profile: profile('standard', { name: 'x.b' }) })];
    const first = updateRoutingTable(undefined, both);
    expect(first.table.routes.get('api.x.b.localhost')?.worktree).toBe('x.b');
    const inputs = both.map((i) => (i.path === '/w/b' ? { ...i, config: other, profile: profile('full', { name: 'x.b' }) } : i));
    const next = updateRoutingTable(first, inputs);
    expect(next.full).toBe('host');
    expect(next.table.routes.get('api.x.b.localhost')?.worktree).toBe('b');
    expectSameAsFullBuild(next.table, inputs);
  });

  it('builds the whole table when a worktree that shares its slug with another changes (the clash involves both)', () => {
    const clashing = [...start, worktree('/w/x2', { branch: 'x' })];
    const first = updateRoutingTable(undefined, clashing);
    expect(first.table.diagnostics).toHaveLength(1);
    const inputs = clashing.map((i) => (i.path === '/w/x2' ? { ...i, profile: profile('standard') } : i));
    const next = updateRoutingTable(first, inputs);
    expect(next.full).toBe('slug');
    expectSameAsFullBuild(next.table, inputs);
    // A worktree outside the clash still changes alone.
    const flipped = inputs.map((i) => (i.path === '/w/y' ? { ...i, profile: profile('minimal') } : i));
    const alone = updateRoutingTable(next, flipped);
    expect(alone.rebuilt).toEqual(['/w/y']);
    expectSameAsFullBuild(alone.table, flipped);
  });

  /** One edit of a random worktree's input, as the workspace sees files, git and the runtime change. */
  type Edit = { slot: number; change: (input: WorktreeInput) => WorktreeInput } | { slot: number; add: boolean };
  const PATHS = ['/repo', '/w/a', '/w/b', '/w/c', '/w/d', '/w/e', '/w/f'];
  const field = <K extends keyof WorktreeInput>(key: K, values: ReadonlyArray<WorktreeInput[K] | (() => WorktreeInput[K])>) =>
    fc.constantFrom(...values).map((value) => (input: WorktreeInput): WorktreeInput => {
      const next = { ...input, [key]: typeof value === 'function' ? value() : value };
      if (next[key] === undefined) delete next[key];
      return next;
    });
  const change = fc.oneof(
    { weight: 6, arbitrary: field('profile', [undefined, profile('minimal'), profile('standard'), profile('full'), profile('standard', { services: new Map([['api', 'remote']]), writes: new Map([['api', 'read-write']]) }), profile('minimal', { name: 'b' }), profile('full', { name: 'contoso' }), profile('full', { name: 'x.b' })]) },
    { weight: 2, arbitrary: field('config', [contoso, contosoEdited, other, undefined, dotted]) },
    { weight: 2, arbitrary: field('branch', ['a', 'b', 'feature/c', 'c', undefined]) },
    { weight: 2, arbitrary: field('runtimePorts', [undefined, () => new Map(), () => new Map([['api', 41001]]), () => new Map([['ui', 41002], ['web', 41003]])]) },
    { weight: 2, arbitrary: field('runtimeFailures', [undefined, () => new Map([['api', { message: 'the local container of "api" failed', hint: 'read its log' }]]), () => new Map([['api', { message: 'exited', hint: 'read its log' }]])]) },
    { weight: 1, arbitrary: field('down', [true, undefined]) },
    { weight: 1, arbitrary: field('setupPending', [true, undefined]) },
    { weight: 1, arbitrary: field('diagnostics', [[], [diagnostic], () => [diagnostic]]) },
    { weight: 1, arbitrary: field('projectName', ['contoso', 'other', undefined]) },
    { weight: 1, arbitrary: field('isMain', [true, false]) },
  );
  const edit: fc.Arbitrary<Edit> = fc.oneof(
    { weight: 12, arbitrary: fc.record({ slot: fc.nat(PATHS.length - 1), change }) },
    { weight: 1, arbitrary: fc.record({ slot: fc.nat(PATHS.length - 1), add: fc.boolean() }) },
  );

  it('equals the full build after every one of many random edits, and builds one worktree for most of them', () => {
    const reasons = new Map<string, number>();
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 25 }), (edits) => {
        const inputs = new Map(PATHS.slice(0, 5).map((path, i) => [path, worktree(path, { branch: ['main', 'a', 'b', 'c', 'd'][i] as string })]));
        let build: RoutingBuild = updateRoutingTable(undefined, [...inputs.values()]);
        for (const e of edits) {
          const path = PATHS[e.slot] as string;
          const current = inputs.get(path);
          if ('add' in e) {
            if (e.add && !current) inputs.set(path, worktree(path, { branch: path.slice(3) }));
            else if (!e.add) inputs.delete(path);
          } else if (current) {
            inputs.set(path, e.change(current));
          }
          const next = [...inputs.values()];
          const previous = build;
          const before = buildRoutingTable([...previous.inputs.values()]);
          build = updateRoutingTable(previous, next);
          expectSameAsFullBuild(build.table, next);
          expect(previous.table).toStrictEqual(before);
          const outcome = build.full ?? (build.rebuilt.length === 0 ? 'unchanged' : 'part');
          reasons.set(outcome, (reasons.get(outcome) ?? 0) + 1);
        }
      }),
      { numRuns: 60 },
    );
    const count = (outcome: string) => reasons.get(outcome) ?? 0;
    // Every way through the update was taken, and the part-only way for most edits that changed something.
    for (const outcome of ['part', 'unchanged', 'worktrees', 'slug', 'host']) expect(count(outcome), outcome).toBeGreaterThan(0);
    expect(count('part')).toBeGreaterThan(count('worktrees') + count('slug') + count('host'));
  });
});
