import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { updateRepos } from '../../workspace/home.js';
import { Workspace } from '../../workspace/watcher.js';
import { profilePath, writeProfile } from '../../profiles/files.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';

const CONFIG = `name: contoso
services:
  ui: { local: { port: 3000 }, remote: https://ui-dev.example.com }
  api: { local: { port: 8080 }, remote: https://api-dev.example.com }
profiles:
  minimal: [ui]
  standard: [ui, api]
default: minimal
`;

let home: string;
let repo: TempRepo;
let workspace: Workspace;
const warnings: string[] = [];

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-home-'));
  repo = await createTempRepo({ 'devproxy.yaml': CONFIG });
  warnings.length = 0;
  workspace = new Workspace({ home, logger: { info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) } });
});

afterEach(async () => {
  await workspace.close();
  await repo.cleanup();
  await rm(home, { recursive: true, force: true });
});

const mode = (host: string) => workspace.getTable().routes.get(host)?.mode;

async function startWith(...worktrees: string[]): Promise<string[]> {
  const paths = worktrees.map((branch) => repo.addWorktree(branch));
  await updateRepos(home, () => [repo.main]);
  await workspace.start();
  return paths;
}

/** Time from the start of a write until the table shows `expected` for `host`. */
async function flip(write: () => Promise<void>, host: string, expected: 'local' | 'remote', how = 'write'): Promise<number> {
  const started = performance.now();
  await write();
  await waitFor(() => (mode(host) === expected ? true : undefined), 5_000, `${host} → ${expected} after ${how}`);
  return performance.now() - started;
}

describe('Workspace watchers', () => {
  it('routes the main checkout and every worktree of a registered repository', async () => {
    await startWith('feature/hierarchy-filters');
    expect([...workspace.getTable().routes.keys()].sort()).toEqual([
      'api.contoso.localhost', 'api.hierarchy-filters.localhost', 'ui.contoso.localhost', 'ui.hierarchy-filters.localhost',
    ]);
    expect(mode('api.hierarchy-filters.localhost')).toBe('remote');
  });

  it('applies every way of writing the profile file, many times over (the watcher never loses the file)', async () => {
    const [wt] = await startWith('feature/x');
    const path = profilePath(wt!);
    const host = 'api.x.localhost';
    const ways: Record<string, (profile: string) => Promise<void>> = {
      'devproxy use (temp + rename)': (p) => writeProfile(wt!, { profile: p }).then(() => undefined),
      'in-place write': (p) => writeFile(path, `profile: ${p}\n`),
      'editor atomic replace': async (p) => {
        await writeFile(`${path}.swp`, `profile: ${p}\n`);
        await rename(`${path}.swp`, path);
      },
      'delete and recreate': async (p) => {
        await rm(path, { force: true });
        await writeFile(path, `profile: ${p}\n`);
      },
    };
    await mkdir(join(wt!, '.devproxy'), { recursive: true });
    const figures: Record<string, number[]> = {};
    for (let round = 0; round < 3; round++) {
      for (const [name, write] of Object.entries(ways)) {
        (figures[name] ??= []).push(await flip(() => write('standard'), host, 'local', `${name} #${round}`));
        figures[name]!.push(await flip(() => write('minimal'), host, 'remote', `${name} #${round}`));
      }
    }
    const all = Object.values(figures).flat().sort((a, b) => a - b);
    // A figure for the record (performance is asserted by `npm run bench`, not here).
    console.log(`flip write→table: ${Object.entries(figures).map(([n, f]) => `${n} max ${Math.max(...f).toFixed(1)} ms`).join('; ')}; overall p50 ${all[Math.floor(all.length / 2)]!.toFixed(1)} ms`);
    expect(all).toHaveLength(24);
  });

  it('keeps the last good routes of a worktree whose profile breaks, reports it, and recovers', async () => {
    const [wt, other] = await startWith('feature/x', 'feature/y');
    await flip(() => writeProfile(wt!, { profile: 'standard' }).then(() => undefined), 'api.x.localhost', 'local');
    await writeProfile(other!, { profile: 'standard' });
    await waitFor(() => (mode('api.y.localhost') === 'local' ? true : undefined));

    await writeFile(profilePath(wt!), 'profile: [standard\n');
    const state = await waitFor(() => workspace.getTable().worktrees.find((w) => w.slug === 'x' && w.diagnostics.length > 0));
    expect(state.diagnostics[0]).toMatchObject({ file: profilePath(wt!), line: 2, message: expect.stringContaining('YAML syntax error') });
    expect(mode('api.x.localhost')).toBe('local');
    expect(workspace.getTable().worktrees.find((w) => w.slug === 'y')?.diagnostics).toEqual([]);

    await writeFile(profilePath(wt!), 'profile: standrd\n');
    await waitFor(() => workspace.getTable().worktrees.find((w) => w.slug === 'x')?.diagnostics[0]?.message.includes('unknown profile "standrd"') || undefined);
    expect(mode('api.x.localhost')).toBe('local');

    for (const garbage of ['', '\u0000\u0001\u00ff binary', 'profile: minimal\n  bad: indent\n']) {
      await writeFile(profilePath(wt!), garbage);
      await waitFor(() => (workspace.getTable().worktrees.find((w) => w.slug === 'x')?.diagnostics.length ? true : undefined));
      expect(mode('api.x.localhost')).toBe('local');
    }

    await flip(() => writeFile(profilePath(wt!), 'profile: minimal\n'), 'api.x.localhost', 'remote');
    expect(workspace.getTable().worktrees.find((w) => w.slug === 'x')?.diagnostics).toEqual([]);
    expect(warnings.some((w) => w.includes(profilePath(wt!)))).toBe(true);
  });

  it('keeps the last good config when devproxy.yaml breaks, and applies a fixed one', async () => {
    const [wt] = await startWith('feature/x');
    await writeFile(join(wt!, 'devproxy.yaml'), CONFIG.replace('name: contoso', 'name: contoso\nservices: [oops'));
    await waitFor(() => workspace.getTable().worktrees.find((w) => w.slug === 'x')?.diagnostics[0]);
    expect(workspace.getTable().routes.has('ui.x.localhost')).toBe(true);
    await writeFile(join(wt!, 'devproxy.yaml'), CONFIG.replace('  api:', '  web: { local: { port: 4000 } }\n  api:'));
    await waitFor(() => (workspace.getTable().routes.has('web.x.localhost') ? true : undefined));
    expect(workspace.getTable().worktrees.find((w) => w.slug === 'x')?.diagnostics).toEqual([]);
  });

  it('follows git: a worktree added or removed while running appears or disappears', async () => {
    await startWith();
    const added = repo.addWorktree('feature/late');
    await waitFor(() => (workspace.getTable().routes.has('ui.late.localhost') ? true : undefined), 5_000, 'new worktree');
    repo.git(['worktree', 'remove', '--force', added]);
    await waitFor(() => (workspace.getTable().routes.has('ui.late.localhost') ? undefined : true), 5_000, 'removed worktree');
  });

  it('picks up a repository registered while running', async () => {
    await workspace.start();
    expect(workspace.getTable().routes.size).toBe(0);
    await updateRepos(home, (list) => [...list, repo.main]);
    await waitFor(() => (workspace.getTable().routes.has('ui.contoso.localhost') ? true : undefined));
  });
});
