import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A real git repository in a temp folder, with helpers to add worktrees. */
export interface TempRepo {
  /** Parent temp folder (holds the repo and its worktrees). */
  root: string;
  /** Main checkout. */
  main: string;
  git(args: string[], cwd?: string): string;
  /** `git worktree add -b <branch> <root>/<folder>`; returns the worktree path. */
  addWorktree(branch: string, folder?: string): string;
  cleanup(): Promise<void>;
}

/** Creates a repository whose first commit holds `files` (e.g. a devproxy.yaml; paths may name folders). */
export async function createTempRepo(files: Record<string, string>, name = 'repo'): Promise<TempRepo> {
  const root = await realpath(await mkdtemp(join(tmpdir(), 'devproxy-git-')));
  const main = join(root, name);
  const git = (args: string[], cwd = main) =>
    execFileSync('git', ['-c', 'user.email=test@devproxy.test', '-c', 'user.name=devproxy tests', '-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false', ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  git(['init', '-q', main], root);
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(main, file)), { recursive: true });
    await writeFile(join(main, file), text);
  }
  git(['add', '.']);
  git(['commit', '-q', '--allow-empty', '-m', 'initial']);
  return {
    root,
    main,
    git,
    addWorktree(branch, folder = branch.split('/').pop()!) {
      const path = join(root, folder);
      git(['worktree', 'add', '-q', '-b', branch, path]);
      return path;
    },
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

/** Polls `check` until it returns a value other than undefined; rejects after `timeoutMs`. */
export async function waitFor<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 5_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
