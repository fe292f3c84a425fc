import { access } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { simpleGit } from 'simple-git';
import { DevproxyError } from '../errors.js';
import type { ProjectConfig } from '../profiles/schema.js';
import { toSlug } from '../hostname.js';
import { listWorktrees, SETUP_PENDING_LOCK } from '../workspace/git-worktrees.js';

/**
 * Checks a feature name before anything is created: it must be a valid git branch name whose
 * last segment is already a hostname label (so the URL is exactly what the user typed).
 */
export async function validateFeatureName(main: string, feature: string): Promise<string> {
  const slug = toSlug(feature);
  const last = feature.split('/').pop() ?? '';
  if (slug === '' || slug !== last) {
    throw new DevproxyError('DEVPROXY_ERR_USAGE', `"${feature}" cannot name a worktree: its last part must be a hostname label`, {
      hint: slug ? `use lower-case letters, digits and hyphens, e.g. \`devproxy new ${[...feature.split('/').slice(0, -1), slug].join('/')}\`` : 'use lower-case letters, digits and hyphens, e.g. `devproxy new feature/login-page`',
    });
  }
  try {
    await simpleGit({ baseDir: main }).raw(['check-ref-format', '--branch', feature]);
  } catch {
    throw new DevproxyError('DEVPROXY_ERR_USAGE', `"${feature}" is not a valid git branch name`, { hint: 'avoid spaces, "..", "~", "^", ":" and a trailing "/" or ".lock"' });
  }
  return slug;
}

/** Where `devproxy new` puts a feature's worktree: `worktrees:` of the config, else `<repo>.worktrees/`. */
export function defaultWorktreePath(main: string, config: ProjectConfig, slug: string): string {
  const parent = config.worktreesDir ? resolve(main, config.worktreesDir) : join(dirname(main), `${basename(main)}.worktrees`);
  return join(parent, slug);
}

/**
 * Creates branch `feature` from `base` (default: the current worktree's HEAD) in a new worktree
 * at `path`. Refuses, changing nothing, when the branch, the folder or the hostname slug exists,
 * or when the base would silently leave out uncommitted changes.
 */
export async function createFeatureWorktree(opts: { main: string; current: string; feature: string; slug: string; path: string; base?: string; takenSlugs: string[]; setupPending?: boolean }): Promise<void> {
  const git = simpleGit({ baseDir: opts.main });
  if ((await git.raw(['branch', '--list', opts.feature])).trim() !== '') {
    throw new DevproxyError('DEVPROXY_ERR_WORKTREE_EXISTS', `branch "${opts.feature}" already exists`, { hint: `pick another name, or check it out yourself: \`git worktree add ${opts.path} ${opts.feature}\`` });
  }
  if (await access(opts.path).then(() => true, () => false)) {
    throw new DevproxyError('DEVPROXY_ERR_WORKTREE_EXISTS', `${opts.path} already exists`, { hint: 'pick another name, or pass --path <dir>' });
  }
  if (opts.takenSlugs.includes(opts.slug)) {
    throw new DevproxyError('DEVPROXY_ERR_WORKTREE_EXISTS', `a worktree is already reachable as "${opts.slug}"`, { hint: 'pick another name (`devproxy status` lists the worktrees)' });
  }
  if (!opts.base) {
    const dirty = (await simpleGit({ baseDir: opts.current }).raw(['status', '--porcelain', '--untracked-files=no'])).trim();
    if (dirty) {
      throw new DevproxyError('DEVPROXY_ERR_DIRTY_BASE', `${opts.current} has uncommitted changes that the new worktree would not contain`, { hint: 'commit or stash them first, or name the base explicitly with --base <ref>' });
    }
  }
  // Locked in the same git command that creates it, so the daemon never sees it unlocked before its set-up ran.
  const lock = opts.setupPending ? ['--lock', '--reason', SETUP_PENDING_LOCK] : [];
  await git.raw(['worktree', 'add', ...lock, '-b', opts.feature, opts.path, opts.base ?? (await simpleGit({ baseDir: opts.current }).revparse(['HEAD'])).trim()]);
}

/** Ends a worktree's set-up lock (a no-op when it has none): the daemon then starts its local services. */
export async function finishSetup(main: string, path: string): Promise<void> {
  const entry = (await listWorktrees(main)).find((w) => w.path === path);
  if (entry?.setupPending) await simpleGit({ baseDir: main }).raw(['worktree', 'unlock', path]);
}

/** What {@link checkFeatureRemoval} found: the worktree's branch, to delete after the removal. */
export interface FeatureRemoval {
  main: string;
  path: string;
  force: boolean;
  deleteBranch: boolean;
  branch?: string;
  /** It still carries devproxy's set-up lock (unlocked before the removal). */
  setupPending: boolean;
}

/**
 * Everything that can make `rm` refuse, checked before anything is stopped: the path is a
 * feature worktree of `main`, it has no uncommitted changes (unless `force`), and a branch to be
 * deleted is merged (unless `force`; `git branch -d` would refuse it after the worktree is gone).
 */
export async function checkFeatureRemoval(opts: { main: string; path: string; force: boolean; deleteBranch: boolean }): Promise<FeatureRemoval> {
  const entry = (await listWorktrees(opts.main)).find((w) => w.path === opts.path);
  if (!entry) throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_WORKTREE', `${opts.path} is not a worktree of ${opts.main}`);
  if (entry.isMain) throw new DevproxyError('DEVPROXY_ERR_USAGE', 'the main checkout cannot be removed', { hint: 'name a feature worktree (`devproxy status` lists them)' });
  if (!opts.force) {
    const dirty = (await simpleGit({ baseDir: opts.path }).raw(['status', '--porcelain'])).trim();
    if (dirty) throw new DevproxyError('DEVPROXY_ERR_DIRTY_WORKTREE', `${opts.path} has uncommitted changes:\n${dirty}`, { hint: 'commit or stash them, or pass --force to discard them' });
    if (opts.deleteBranch && entry.branch) {
      const merged = (await simpleGit({ baseDir: opts.main }).raw(['branch', '--merged', 'HEAD', '--list', entry.branch])).trim();
      if (!merged) {
        throw new DevproxyError('DEVPROXY_ERR_BRANCH_NOT_MERGED', `branch "${entry.branch}" is not merged into ${opts.main}'s HEAD; deleting it would lose its commits`);
      }
    }
  }
  return { ...opts, ...(entry.branch ? { branch: entry.branch } : {}), setupPending: entry.setupPending === true };
}

/** Removes a worktree checked by {@link checkFeatureRemoval} and, if asked, its branch. */
export async function removeFeatureWorktree(removal: FeatureRemoval): Promise<void> {
  const git = simpleGit({ baseDir: removal.main });
  // git refuses to remove a locked worktree; devproxy's own set-up lock is no reason to keep it.
  if (removal.setupPending) await git.raw(['worktree', 'unlock', removal.path]);
  await git.raw(['worktree', 'remove', ...(removal.force ? ['--force'] : []), removal.path]);
  if (removal.deleteBranch && removal.branch) await git.raw(['branch', removal.force ? '-D' : '-d', removal.branch]);
}
