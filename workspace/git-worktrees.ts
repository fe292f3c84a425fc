import { execFile } from 'node:child_process';
import { realpath } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { DevproxyError } from '../errors.js';

/** Bound on what one git call may print; a `worktree list` of thousands of worktrees fits. */
const GIT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/**
 * Runs `git <args>` in `cwd` and resolves with its stdout; rejects with git's own message. The
 * daemon reads worktrees through this and not simple-git, whose import costs ~8–11 MiB of RSS
 * for the two read-only calls made here (the CLI's `new`/`rm` keep simple-git).
 */
function git(cwd: string, args: string[]): Promise<string> {
  return new Promise((done, fail) => {
    execFile('git', args, { cwd, maxBuffer: GIT_MAX_OUTPUT_BYTES }, (error, stdout, stderr) => {
      if (error) fail(new Error(stderr.trim() || error.message, { cause: error }));
      else done(stdout);
    });
  });
}

/** One entry of `git worktree list`. */
export interface GitWorktree {
  path: string;
  /** Short branch name (`feature/x`), absent when detached. */
  branch?: string;
  isMain: boolean;
  /** Locked by `devproxy new` until its `setup:` succeeded: its local services must not start yet. */
  setupPending?: boolean;
}

/** Reason of the git lock that marks a worktree whose set-up has not succeeded yet. */
export const SETUP_PENDING_LOCK = 'devproxy: setup pending (run `devproxy setup` in it)';

/** A worktree git still lists whose folder is gone (deleted without `git worktree remove`). */
export interface GoneWorktree {
  path: string;
  /** Git's own words, e.g. "gitdir file points to non-existent location". */
  reason: string;
}

/**
 * Lists the worktrees of the repository that contains `dir`, main checkout first, using
 * `git worktree list --porcelain` (bare and prunable entries, whose folder is gone, are skipped).
 */
export async function listWorktrees(dir: string): Promise<GitWorktree[]> {
  return (await readWorktreeList(dir)).worktrees;
}

/**
 * The worktrees of the repository that contains `dir` (main checkout first) and those git still
 * lists whose folder is gone. Read with `-z`: a path may hold a newline, which would otherwise
 * split one entry into a fake second one.
 */
export async function readWorktreeList(dir: string): Promise<{ worktrees: GitWorktree[]; gone: GoneWorktree[] }> {
  const output = await git(dir, ['worktree', 'list', '--porcelain', '-z']);
  const worktrees: GitWorktree[] = [];
  const gone: GoneWorktree[] = [];
  // Fields end in NUL; an empty field (two NULs in a row) ends an entry.
  for (const block of output.split('\0\0')) {
    const fields = block.split('\0').filter(Boolean);
    const path = fields.find((l) => l.startsWith('worktree '))?.slice('worktree '.length);
    if (!path || fields.includes('bare')) continue;
    const prunable = fields.find((l) => l === 'prunable' || l.startsWith('prunable '));
    if (prunable !== undefined) {
      gone.push({ path, reason: prunable.slice('prunable '.length) || 'its folder is gone' });
      continue;
    }
    const ref = fields.find((l) => l.startsWith('branch '))?.slice('branch '.length);
    const branch = ref?.replace(/^refs\/heads\//, '');
    const setupPending = fields.includes(`locked ${SETUP_PENDING_LOCK}`);
    worktrees.push({ path, ...(branch ? { branch } : {}), isMain: worktrees.length === 0, ...(setupPending ? { setupPending } : {}) });
  }
  return { worktrees, gone };
}

/** Where a repository's git data lives, for a folder anywhere inside one of its worktrees. */
export interface RepoLocation {
  /** Top of the worktree that contains the folder. */
  worktree: string;
  /** Main checkout of the repository. */
  main: string;
  /** The shared `.git` directory (holds `worktrees/`). */
  commonDir: string;
}

/** Finds the worktree, main checkout and common git dir for `dir`; a clear error outside git. */
export async function locateRepo(dir: string): Promise<RepoLocation> {
  const { worktree, commonDir } = await revParse(dir);
  const main = (await listWorktrees(dir))[0]?.path ?? worktree;
  return { worktree: await realpath(worktree), main: await realpath(main), commonDir };
}

/**
 * The shared `.git` directory of the repository that contains `dir`, without listing its
 * worktrees (the daemon lists them right after, on its own).
 */
export async function gitCommonDir(dir: string): Promise<string> {
  return (await revParse(dir)).commonDir;
}

async function revParse(dir: string): Promise<{ worktree: string; commonDir: string }> {
  let worktree: string;
  let commonDir: string;
  try {
    [worktree, commonDir] = (await git(dir, ['rev-parse', '--show-toplevel', '--git-common-dir'])).trim().split('\n') as [string, string];
  } catch (error) {
    throw new DevproxyError('DEVPROXY_ERR_NOT_A_REPO', `${dir} is not inside a git repository`, { cause: error });
  }
  return { worktree, commonDir: await realpath(isAbsolute(commonDir) ? commonDir : resolve(dir, commonDir)) };
}
