import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { updateRepos } from '../../workspace/home.js';
import { Workspace } from '../../workspace/watcher.js';
import { profilePath, writeProfile } from '../../profiles/files.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';

/**
 * The worktree watcher on directories (fs.watch, inotify): the cases a directory watch has to
 * handle that a file watch never met — a watched folder deleted and made again, `.devproxy/`
 * appearing after start, replacements back to back, git adding and removing worktrees, a
 * hostile `.devproxy` link, the inotify limit, and close() releasing every watch.
 */
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
const until = (host: string, expected: 'local' | 'remote' | undefined, what: string) =>
  waitFor(() => (mode(host) === expected ? true : undefined), 5_000, `${host} → ${expected ?? 'unrouted'} after ${what}`);

async function startWith(...branches: string[]): Promise<string[]> {
  const paths = branches.map((branch) => repo.addWorktree(branch));
  await updateRepos(home, () => [repo.main]);
  await workspace.start();
  return paths;
}

/** Replaces the profile file by rename, as an editor or `devproxy use` does. */
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
      await writeFile(join(outside, 'profile.yaml'), 'profile: standard\n');
      const wt = repo.addWorktree('feature/linked');
      await symlink(outside, join(wt, '.devproxy'));
      await updateRepos(home, () => [repo.main]);
      await workspace.start();
      const problem = await waitFor(() => workspace.getTable().worktrees.find((w) => w.slug === 'linked')?.diagnostics.find((d) => /outside the worktree/.test(d.message)));
      expect(problem.file).toBe(profilePath(wt));
      expect(mode('api.linked.localhost')).toBe('remote');
      const watched = await watchedInodes();
      expect(watched.has(await inodeOf(wt))).toBe(true);
      expect(watched.has(await inodeOf(outside))).toBe(false);
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
