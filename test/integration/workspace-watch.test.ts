import { createHook } from 'node:async_hooks';
import { execFile } from 'node:child_process';
import { closeSync, mkdirSync, openSync, watch, writeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, readlink, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
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
    // writeFile truncates first: the watcher may read the empty file before the broken one.
    const state = await waitFor(() => workspace.getTable().worktrees.find((w) => w.slug === 'x' && w.diagnostics[0]?.message.includes('YAML syntax error')));
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

/*
 * The cases a directory watch (fs.watch, inotify) has to handle that a file watch never met: a
 * watched folder deleted and made again, `.devproxy/` appearing after start, replacements back to
 * back, git adding and removing worktrees, a hostile `.devproxy` link, the inotify limit, and
 * close() releasing every watch.
 */

const until = (host: string, expected: 'local' | 'remote' | undefined, what: string) =>
  waitFor(() => (mode(host) === expected ? true : undefined), 5_000, `${host} → ${expected ?? 'unrouted'} after ${what}`);

/** Replaces the profile file by rename, as an editor or `devproxy use` does. */
/** Points the link at `path` to `target` by a rename over it, as `ln -sfn` through a temporary name does. */
async function repoint(path: string, target: string): Promise<void> {
  await symlink(target, `${path}.next`);
  await rename(`${path}.next`, path);
}

async function replaceProfile(worktree: string, profile: string, tag: string): Promise<void> {
  await mkdir(join(worktree, '.devproxy'), { recursive: true });
  await writeFile(`${profilePath(worktree)}.${tag}`, `profile: ${profile}\n`);
  await rename(`${profilePath(worktree)}.${tag}`, profilePath(worktree));
}

/** Inodes of every directory this process's inotify instances watch, as the kernel lists them. */
async function watchedInodes(): Promise<Set<bigint>> {
  const inodes = new Set<bigint>();
  for (const fd of await readdir('/proc/self/fd')) {
    if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) !== 'anon_inode:inotify') continue;
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '');
    for (const match of info.matchAll(/^inotify wd:\S+ ino:([0-9a-f]+)/gm)) inodes.add(BigInt(`0x${match[1]}`));
  }
  return inodes;
}

/**
 * A Workspace, not started, on a home at `<base>/p/home` whose registry names a repository that
 * routes `ui.contoso.localhost`; `register` writes that registry again, `cleanup` closes the
 * Workspace and deletes everything.
 */
async function homeUnderParent() {
  const base = await mkdtemp(join(tmpdir(), 'devproxy-home-parent-'));
  const parent = join(base, 'p');
  const home = join(parent, 'home');
  await mkdir(home, { recursive: true });
  const repo = await createTempRepo({ 'devproxy.yaml': CONFIG });
  const register = () => updateRepos(home, () => [repo.main]);
  await register();
  const ws = new Workspace({ home });
  return {
    base,
    parent,
    home,
    ws,
    register,
    routed: () => ws.getTable().routes.has('ui.contoso.localhost'),
    cleanup: async () => {
      await ws.close();
      await repo.cleanup();
      await rm(base, { recursive: true, force: true });
    },
  };
}

const inodeOf = async (path: string) => (await stat(path, { bigint: true })).ino;
const fsWatchHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length;

describe('watching directories', () => {
  it('sees .devproxy/ made after start, even when the profile is written before its watch can start', async () => {
    const [wt] = await startWith('feature/x');
    expect(mode('api.x.localhost')).toBe('remote');
    for (let round = 0; round < 5; round++) {
      // No await between the two: the file exists before the folder's event is handled.
      await mkdir(join(wt!, '.devproxy'));
      await writeFile(profilePath(wt!), 'profile: standard\n');
      await until('api.x.localhost', 'local', `.devproxy made with a profile, round ${round}`);
      await rm(join(wt!, '.devproxy'), { recursive: true });
      await until('api.x.localhost', 'remote', `.devproxy deleted, round ${round}`);
    }
  });

  it('follows .devproxy/ deleted and made again, by rm -rf or by a rename over it', async () => {
    const [wt] = await startWith('feature/x');
    await writeProfile(wt!, { profile: 'standard' });
    await until('api.x.localhost', 'local', 'first profile');
    for (let round = 0; round < 3; round++) {
      await rm(join(wt!, '.devproxy'), { recursive: true });
      await mkdir(join(wt!, '.devproxy'));
      // The new folder's watch must be live: a replacement inside it applies.
      await replaceProfile(wt!, 'minimal', `a${round}`);
      await until('api.x.localhost', 'remote', `.devproxy made again, round ${round}`);
      await replaceProfile(wt!, 'standard', `b${round}`);
      await until('api.x.localhost', 'local', `replacement in the new .devproxy, round ${round}`);
      // A whole folder renamed over the old one (its inode changes, its name does not).
      const staged = join(wt!, `.devproxy-next-${round}`);
      await mkdir(staged);
      await writeFile(join(staged, 'profile.yaml'), 'profile: minimal\n');
      await rm(join(wt!, '.devproxy'), { recursive: true });
      await rename(staged, join(wt!, '.devproxy'));
      await until('api.x.localhost', 'remote', `.devproxy renamed into place, round ${round}`);
      await replaceProfile(wt!, 'standard', `c${round}`);
      await until('api.x.localhost', 'local', `replacement in the renamed .devproxy, round ${round}`);
    }
  });

  it('takes a file named like the worktree folder (a build output) for a file, not for the folder going', async () => {
    await workspace.close();
    let rebuilds = 0;
    workspace = new Workspace({ home, onChange: () => rebuilds++ });
    const [wt] = await startWith('feature/x');
    await writeProfile(wt!, { profile: 'minimal' });
    await until('api.x.localhost', 'remote', 'first profile');
    rebuilds = 0;
    // node reports a change of `<folder>/<folder's name>` by the same name as the folder's own deletion.
    for (let i = 0; i < 20; i++) await writeFile(join(wt!, basename(wt!)), `build ${i}\n`);
    await replaceProfile(wt!, 'standard', 'after-build');
    await until('api.x.localhost', 'local', 'profile after the builds');
    await replaceProfile(wt!, 'minimal', 'after-build-2');
    await until('api.x.localhost', 'remote', 'second profile after the builds');
    // Two flips, one or two rebuilds each; the 20 writes of the build output none.
    expect(rebuilds).toBeLessThanOrEqual(4);
  });

  it('rebuilds once for a file truncated and then written (`echo x > devproxy.yaml`), though each is an event', async () => {
    await workspace.close();
    let rebuilds = 0;
    workspace = new Workspace({ home, onChange: () => rebuilds++ });
    const [wt] = await startWith('feature/x');
    await writeProfile(wt!, { profile: 'standard' });
    await until('api.x.localhost', 'local', 'first profile');
    rebuilds = 0;
    // The shell's `>`: open with O_TRUNC, then write. One turn of the event loop in between lets
    // the truncation's event arrive on its own (back to back, inotify merges the two).
    const fd = openSync(join(wt!, 'devproxy.yaml'), 'w');
    await new Promise((resolve) => setImmediate(resolve));
    writeSync(fd, CONFIG.replace('  api:', '  docs: { local: { port: 4001 } }\n  api:'));
    closeSync(fd);
    await waitFor(() => (workspace.getTable().routes.has('docs.x.localhost') ? true : undefined), 5_000, 'devproxy.yaml written');
    // The same for the profile file, in place; its rebuild also proves none is left of the first.
    const profile = openSync(profilePath(wt!), 'w');
    await new Promise((resolve) => setImmediate(resolve));
    writeSync(profile, 'profile: minimal\n');
    closeSync(profile);
    await until('api.x.localhost', 'remote', 'profile written in place');
    expect(rebuilds).toBe(2);
  });

  it('applies the second of two replacements made back to back: the last one wins', async () => {
    const [wt] = await startWith('feature/x');
    await writeProfile(wt!, { profile: 'minimal' });
    await until('api.x.localhost', 'remote', 'first profile');
    for (let round = 0; round < 20; round++) {
      const [first, last] = round % 2 === 0 ? ['minimal', 'standard'] : ['standard', 'minimal'];
      await replaceProfile(wt!, first!, `first${round}`);
      await replaceProfile(wt!, last!, `last${round}`);
      await until('api.x.localhost', last === 'standard' ? 'local' : 'remote', `${first} then ${last}, round ${round}`);
    }
    // devproxy.yaml too, written in place twice in a row.
    await writeFile(join(wt!, 'devproxy.yaml'), CONFIG.replace('  api:', '  web: { local: { port: 4000 } }\n  api:'));
    await writeFile(join(wt!, 'devproxy.yaml'), CONFIG.replace('  api:', '  docs: { local: { port: 4001 } }\n  api:'));
    await waitFor(() => (workspace.getTable().routes.has('docs.x.localhost') ? true : undefined), 5_000, 'second devproxy.yaml');
    expect(workspace.getTable().routes.has('web.x.localhost')).toBe(false);
  });

  it('follows real git: worktrees added, removed, deleted with rm -rf and added again at the same path, a branch switched', async () => {
    await startWith();
    for (let round = 0; round < 2; round++) {
      const path = repo.addWorktree(`feature/late-${round}`, 'late');
      await until(`ui.late-${round}.localhost`, 'local', `git worktree add, round ${round}`);
      // The new worktree's own watch is live.
      await writeProfile(path, { profile: 'standard' });
      await until(`api.late-${round}.localhost`, 'local', `profile of the added worktree, round ${round}`);
      if (round === 0) {
        await rm(path, { recursive: true, force: true });
        await until(`ui.late-${round}.localhost`, undefined, 'rm -rf');
        expect(workspace.getTable().diagnostics.find((d) => d.file === path)?.message).toMatch(/the worktree folder is gone/);
        repo.git(['worktree', 'prune']);
        await waitFor(() => (workspace.getTable().diagnostics.some((d) => d.file === path) ? undefined : true), 5_000, 'prune seen');
      } else {
        // Its HEAD (in the git data) changes with a branch switch: the slug follows.
        repo.git(['checkout', '-q', '-b', 'feature/renamed'], path);
        await until('ui.renamed.localhost', 'local', 'branch switched');
        await until(`ui.late-${round}.localhost`, undefined, 'old slug gone');
        repo.git(['worktree', 'remove', '--force', path]);
        await until('ui.renamed.localhost', undefined, 'git worktree remove');
      }
    }
  });

  it('does not watch outside the worktree through a .devproxy symbolic link, and still watches the worktree', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'devproxy-outside-'));
    try {
      const wt = repo.addWorktree('feature/linked');
      await updateRepos(home, () => [repo.main]);
      await workspace.start();
      // Linked while running, to an empty folder: refused at once, before any profile is there
      // (one written through the link later would never be seen).
      await symlink(outside, join(wt, '.devproxy'));
      const empty = await waitFor(() => workspace.getTable().worktrees.find((w) => w.slug === 'linked')?.diagnostics.find((d) => /outside the worktree/.test(d.message)));
      expect(empty).toMatchObject({ file: profilePath(wt), message: expect.stringContaining(`symbolic link to ${await realpath(outside)}`) });
      await writeFile(join(outside, 'profile.yaml'), 'profile: standard\n');
      await workspace.reload();
      const problem = workspace.getTable().worktrees.find((w) => w.slug === 'linked')?.diagnostics.find((d) => /outside the worktree/.test(d.message));
      expect(problem?.file).toBe(profilePath(wt));
      expect(mode('api.linked.localhost')).toBe('remote');
      const watched = await watchedInodes();
      expect(watched.has(await inodeOf(wt))).toBe(true);
      expect(watched.has(await inodeOf(outside))).toBe(false);
      // Nor the folder its target is made in, the link dangling or not.
      expect(watched.has(await inodeOf(dirname(outside)))).toBe(false);
      await rm(join(wt, '.devproxy'));
      await symlink(join(outside, 'gone', 'deeper'), join(wt, '.devproxy'));
      await workspace.reload();
      expect((await watchedInodes()).has(await inodeOf(outside))).toBe(false);
      // The link replaced by a real folder: watched and read.
      await rm(join(wt, '.devproxy'));
      await mkdir(join(wt, '.devproxy'));
      await writeFile(profilePath(wt), 'profile: standard\n');
      await until('api.linked.localhost', 'local', 'real .devproxy');
      expect((await watchedInodes()).has(await inodeOf(join(wt, '.devproxy')))).toBe(true);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('follows a $DEVPROXY_HOME that is a symbolic link to the real folder', async () => {
    const link = join(await mkdtemp(join(tmpdir(), 'devproxy-home-link-')), 'home');
    await symlink(home, link);
    const linked = new Workspace({ home: link });
    try {
      await linked.start();
      await updateRepos(link, (list) => [...list, repo.main]);
      await waitFor(() => (linked.getTable().routes.has('ui.contoso.localhost') ? true : undefined), 5_000, 'repository registered through the link');
    } finally {
      await linked.close();
      await rm(dirname(link), { recursive: true, force: true });
    }
  });

  it('follows every link of a $DEVPROXY_HOME chain re-pointed ($DEVPROXY_HOME → link → link → folder)', async () => {
    const base = await mkdtemp(join(tmpdir(), 'devproxy-home-chain-'));
    const other = await createTempRepo({ 'devproxy.yaml': CONFIG.replace('name: contoso', 'name: fabrikam') });
    const linked = new Workspace({ home: join(base, 'home') });
    const routed = () => ['contoso', 'fabrikam'].filter((name) => linked.getTable().routes.has(`ui.${name}.localhost`)).join(',');
    const routes = (expected: string, what: string) => waitFor(() => (routed() === expected ? true : undefined), 5_000, `${expected} routed after ${what}`);
    try {
      for (const dir of ['hop-a', 'hop-b']) await mkdir(join(base, dir));
      await updateRepos(join(base, 'home-one'), () => [repo.main]);
      await updateRepos(join(base, 'home-two'), () => [other.main]);
      await symlink('../home-one', join(base, 'hop-b', 'b'));
      await symlink('../hop-b/b', join(base, 'hop-a', 'a'));
      await symlink('hop-a/a', join(base, 'home'));
      await linked.start();
      expect(routed()).toBe('contoso');
      // The middle link re-pointed (to a link of its own), then that new last link, then the first.
      await symlink('../home-two', join(base, 'hop-b', 'c'));
      await repoint(join(base, 'hop-a', 'a'), '../hop-b/c');
      await routes('fabrikam', 'hop-a/a re-pointed to hop-b/c → home-two');
      await repoint(join(base, 'hop-b', 'c'), '../home-one');
      await routes('contoso', 'hop-b/c re-pointed to home-one');
      await repoint(join(base, 'home'), 'home-two');
      await routes('fabrikam', '$DEVPROXY_HOME re-pointed to home-two');
      // The registry of the home now reached is the one followed.
      await updateRepos(join(base, 'home-two'), (list) => [...list, repo.main]);
      await routes('contoso,fabrikam', 'a repository registered in home-two');
    } finally {
      await linked.close();
      await other.cleanup();
      await rm(base, { recursive: true, force: true });
    }
  });

  it('follows the target of a .devproxy symbolic link inside the worktree deleted and made again', async () => {
    const [wt] = await startWith('feature/x');
    // Nested, and dangling when linked: the target comes later.
    for (const target of ['state', join('conf', 'devproxy')]) {
      await rm(join(wt!, '.devproxy'), { recursive: true, force: true });
      await symlink(target, join(wt!, '.devproxy'));
      await mkdir(join(wt!, target), { recursive: true });
      await replaceProfile(wt!, 'standard', `${basename(target)}-first`);
      await until('api.x.localhost', 'local', `profile through the link to ${target}`);
      for (let round = 0; round < 3; round++) {
        // The target deleted with its folder (round 1: the nested target's parent too), then made again.
        await rm(join(wt!, round === 1 ? target.split('/')[0]! : target), { recursive: true });
        await until('api.x.localhost', 'remote', `${target} deleted, round ${round}`);
        await mkdir(join(wt!, target), { recursive: true });
        await replaceProfile(wt!, 'standard', `${basename(target)}-a${round}`);
        await until('api.x.localhost', 'local', `${target} made again, round ${round}`);
        // A folder renamed over the target, written before and inside after.
        const staged = join(wt!, `staged-${round}`);
        await mkdir(staged);
        await writeFile(join(staged, 'profile.yaml'), 'profile: minimal\n');
        await rm(join(wt!, target), { recursive: true });
        await rename(staged, join(wt!, target));
        await until('api.x.localhost', 'remote', `folder renamed over ${target}, round ${round}`);
        await replaceProfile(wt!, 'standard', `${basename(target)}-b${round}`);
        await until('api.x.localhost', 'local', `replacement in the renamed ${target}, round ${round}`);
      }
    }
  });

  it('follows every link of a .devproxy chain re-pointed (.devproxy → link → link → folder)', async () => {
    const [wt] = await startWith('feature/x');
    for (const [dir, profile] of [['state-one', 'standard'], ['state-two', 'minimal'], ['state-three', 'standard']] as const) {
      await mkdir(join(wt!, dir));
      await writeFile(join(wt!, dir, 'profile.yaml'), `profile: ${profile}\n`);
    }
    await mkdir(join(wt!, 'hop-a'));
    await mkdir(join(wt!, 'hop-b'));
    await symlink('../state-one', join(wt!, 'hop-b', 'b'));
    await symlink('../hop-b/b', join(wt!, 'hop-a', 'a'));
    await symlink('hop-a/a', join(wt!, '.devproxy'));
    await until('api.x.localhost', 'local', 'the chain .devproxy → hop-a/a → hop-b/b → state-one');
    // The last link re-pointed, then the middle one (to a link of its own), then that new link.
    await repoint(join(wt!, 'hop-b', 'b'), '../state-two');
    await until('api.x.localhost', 'remote', 'hop-b/b re-pointed to state-two');
    await symlink('../state-three', join(wt!, 'hop-b', 'c'));
    await repoint(join(wt!, 'hop-a', 'a'), '../hop-b/c');
    await until('api.x.localhost', 'local', 'hop-a/a re-pointed to hop-b/c → state-three');
    await repoint(join(wt!, 'hop-b', 'c'), '../state-two');
    await until('api.x.localhost', 'remote', 'hop-b/c re-pointed to state-two');
    // A chain through a link outside the worktree back into it: the outside folder is not watched.
    const outside = await mkdtemp(join(tmpdir(), 'devproxy-chain-outside-'));
    try {
      await symlink(join(wt!, 'state-three'), join(outside, 'o'));
      await repoint(join(wt!, '.devproxy'), join(outside, 'o'));
      await until('api.x.localhost', 'local', '.devproxy re-pointed through a link outside the worktree');
      expect((await watchedInodes()).has(await inodeOf(outside))).toBe(false);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('follows $DEVPROXY_HOME made again after its parent folder was deleted after it (rm -rf of the parent)', async () => {
    const { base, parent, home, ws, routed, register, cleanup } = await homeUnderParent();
    const baseWatch = watch(base);
    try {
      await ws.start();
      expect(routed()).toBe(true);
      await rm(home, { recursive: true });
      // Unrouted once the home is found missing, by which time its parent is watched for it.
      await waitFor(() => (!routed() ? true : undefined), 5_000, 'the home deleted');
      const parentGone = new Promise<void>((resolve) => baseWatch.on('change', (_type, name) => name === 'p' && resolve()));
      await rm(parent, { recursive: true });
      await parentGone;
      await new Promise((resolve) => setImmediate(resolve));
      await mkdir(home, { recursive: true });
      await register();
      await waitFor(() => (routed() ? true : undefined), 5_000, 'the home made again under a parent made again');
    } finally {
      baseWatch.close();
      await cleanup();
    }
  });

  it('follows $DEVPROXY_HOME whose parent is made again just as the watch on the folder above begins (mkdir -p racing the watch)', async () => {
    const { parent, home, ws, routed, register, cleanup } = await homeUnderParent();
    // The parent is made as the watch on the folder above is set up, before it listens: no event tells of it.
    let armed = false;
    const hook = createHook({
      init(_id, type) {
        if (type !== 'FSEVENTWRAP' || !armed) return;
        armed = false;
        mkdirSync(parent);
      },
    });
    try {
      await ws.start();
      await rm(home, { recursive: true });
      await waitFor(() => (!routed() ? true : undefined), 5_000, 'the home deleted');
      hook.enable();
      armed = true;
      await rm(parent, { recursive: true });
      await waitFor(() => (!armed ? true : undefined), 5_000, 'the watch on the folder above the parent');
      hook.disable();
      // The parent stands, and only a watch on it hears the home made in it.
      await waitFor(async () => ((await watchedInodes()).has(await inodeOf(parent)) ? true : undefined), 5_000, 'the watch to move down to the parent made again');
      await mkdir(home);
      await register();
      await waitFor(() => (routed() ? true : undefined), 5_000, 'the home made in the parent made again');
    } finally {
      hook.disable();
      await cleanup();
    }
  });

  it('follows $DEVPROXY_HOME deleted and made again (rm -rf ~/.devproxy, then devproxy init)', async () => {
    await startWith();
    const link = join(await mkdtemp(join(tmpdir(), 'devproxy-home-link-')), 'home');
    try {
      for (let round = 0; round < 3; round++) {
        await until('ui.contoso.localhost', 'local', `registered, round ${round}`);
        await rm(home, { recursive: true });
        // Its files are the desired state: no registry, no routes.
        await until('ui.contoso.localhost', undefined, `home deleted, round ${round}`);
        await updateRepos(home, () => [repo.main]);
      }
      await until('ui.contoso.localhost', 'local', 'registered again');
      // Deleted and made again before the daemon hears of it.
      await rm(home, { recursive: true });
      await mkdir(home);
      await updateRepos(home, () => []);
      await until('ui.contoso.localhost', undefined, 'unregistered in a home made again at once');
      await updateRepos(home, () => [repo.main]);
      await until('ui.contoso.localhost', 'local', 'registered in a home made again at once');
      // A home that is a symbolic link: its target deleted and made again.
      await workspace.close();
      await symlink(home, link);
      workspace = new Workspace({ home: link });
      await workspace.start();
      await until('ui.contoso.localhost', 'local', 'through the link');
      await rm(home, { recursive: true });
      await until('ui.contoso.localhost', undefined, 'link target deleted');
      await updateRepos(home, () => [repo.main]);
      await until('ui.contoso.localhost', 'local', 'link target made again');
    } finally {
      await rm(dirname(link), { recursive: true, force: true });
    }
  });

  it('releases every watch on close()', async () => {
    const before = fsWatchHandles();
    const [wt] = await startWith('feature/x', 'feature/y');
    await writeProfile(wt!, { profile: 'standard' });
    await until('api.x.localhost', 'local', 'profile');
    const dirs = [home, wt!, join(wt!, '.devproxy'), repo.main, join(repo.main, '.git', 'worktrees')];
    const watched = await watchedInodes();
    for (const dir of dirs) expect(watched.has(await inodeOf(dir)), dir).toBe(true);
    expect(fsWatchHandles()).toBeGreaterThan(before);
    await workspace.close();
    // A handle is released on the loop turn after its close.
    await waitFor(() => (fsWatchHandles() === before ? true : undefined), 5_000, 'every fs.watch handle released');
    const after = await watchedInodes();
    for (const dir of dirs) expect(after.has(await inodeOf(dir)), dir).toBe(false);
  });

  it('close() is final: a watch opening while it runs is closed at once, whichever watch it is', async () => {
    const before = fsWatchHandles();
    const wt = repo.addWorktree('feature/x');
    await updateRepos(home, () => [repo.main]);
    await mkdir(join(wt, 'state'));
    await symlink('state', join(wt, '.devproxy'));
    const dirs = [home, repo.main, join(repo.main, '.git', 'worktrees'), wt, join(wt, 'state')];
    // A start opens a watch per folder it follows; close() is called as the nth of them opens,
    // before the Workspace has it in hand (the microtask after fs.watch returns).
    let opened = 0;
    let closeAt = 0;
    const hook = createHook({
      init(_id, type) {
        if (type === 'FSEVENTWRAP' && ++opened === closeAt) queueMicrotask(() => void workspace.close());
      },
    });
    hook.enable();
    try {
      for (closeAt = 1; ; closeAt++) {
        opened = 0;
        workspace = new Workspace({ home });
        await workspace.start();
        // Closed once only: a second close() would release what the first one missed.
        if (opened < closeAt) await workspace.close();
        await waitFor(() => (fsWatchHandles() === before ? true : undefined), 5_000, `every fs.watch handle released after close() at the opening of watch ${closeAt} of ${opened}`);
        // And the kernel agrees: none of those folders is watched any more.
        const watched = await watchedInodes();
        for (const dir of dirs) expect(watched.has(await inodeOf(dir)), `${dir} after close() at watch ${closeAt}`).toBe(false);
        if (closeAt > opened) break;
      }
    } finally {
      hook.disable();
    }
    // home, the git dir, worktrees/, its entry, two worktree folders, the link's folder and its target.
    expect(closeAt).toBeGreaterThanOrEqual(8);
  });
});

/**
 * The child for the inotify limit: runs the built Workspace in a user namespace whose watch limit
 * is tiny, so that some directories cannot be watched (ENOSPC) while the machine's own limit is
 * left alone. It prints the table's diagnostics and routes, then edits an unwatched worktree's
 * profile and prints whether the edit applied.
 */
const LIMITED_CHILD = `
const [watcherModule, home, profile] = process.argv.slice(1);
const { Workspace } = await import(watcherModule);
const warnings = [];
const workspace = new Workspace({ home, logger: { info() {}, warn: (m) => warnings.push(m), error: (m) => warnings.push(m) } });
await workspace.start();
const until = async (check) => {
  const deadline = Date.now() + 10000;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return check();
};
const mode = (host) => workspace.getTable().routes.get(host)?.mode;
const diagnostics = workspace.getTable().diagnostics;
const routedBefore = mode('api.limited-b.localhost');
const { writeFileSync, renameSync } = await import('node:fs');
writeFileSync(profile + '.tmp', 'profile: standard\\n');
renameSync(profile + '.tmp', profile);
const applied = await until(() => mode('api.limited-b.localhost') === 'local');
await workspace.close();
process.stdout.write(JSON.stringify({ diagnostics, warnings, routedBefore, applied }));
`;

describe('the inotify limit', () => {
  it('names ENOSPC and the sysctl to raise, keeps routing, and polls the unwatched worktree', async () => {
    const [, b] = await startWith('feature/limited-a', 'feature/limited-b');
    await workspace.close();
    for (const wt of [repo.main, b!]) await writeProfile(wt, { profile: 'minimal' });
    const watcherModule = new URL('../../dist/workspace/watcher.js', import.meta.url).href;
    // home, the git dir, worktrees/, two entries, the main checkout: the sixth is the last allowed.
    const script = `echo 6 > /proc/sys/user/max_inotify_watches && exec "${process.execPath}" --input-type=module -e "$0" "$@"`;
    const { stdout } = await promisify(execFile)('unshare', ['-U', '-r', 'sh', '-c', script, LIMITED_CHILD, watcherModule, home, profilePath(b!)], { timeout: 30_000 });
    const result = JSON.parse(stdout) as { diagnostics: Array<{ file: string; message: string; hint: string }>; warnings: string[]; routedBefore: string; applied: boolean };
    const limited = result.diagnostics.filter((d) => d.message.includes('ENOSPC'));
    expect(limited.map((d) => d.file)).toContain(b);
    for (const d of limited) expect(d.hint).toContain('fs.inotify.max_user_watches');
    expect(result.warnings.some((w) => w.includes('ENOSPC') && w.includes('fs.inotify.max_user_watches'))).toBe(true);
    expect(result.routedBefore).toBe('remote');
    expect(result.applied).toBe(true);
  });
});
