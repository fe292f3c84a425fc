import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import { readBoundedFile } from './bounded-read.js';
import { editProfileText, type ProfileChange } from './profile-edit.js';
import type { ProjectConfig } from './schema.js';
import type { ConfigValidation } from './validate-config.js';
import type { ProfileValidation } from './validate-profile.js';
import { validateBounded } from './validate-bounded.js';

/** The committed project config at a repository (or worktree) root. */
export const CONFIG_FILE = 'devproxy.yaml';
/** Per-worktree folder, ignored by git through its own `.gitignore`. */
export const STATE_DIR = '.devproxy';
/** The live profile file inside STATE_DIR. */
export const PROFILE_FILE = 'profile.yaml';

export const configPath = (root: string): string => join(root, CONFIG_FILE);
export const profilePath = (worktree: string): string => join(worktree, STATE_DIR, PROFILE_FILE);

/**
 * Reads and validates a devproxy.yaml. A missing, unreadable or non-file path becomes an error
 * diagnostic (never a throw), so a broken file degrades one worktree instead of the daemon.
 * The file is read within bounds (see {@link readBoundedFile}): `root` is the worktree it
 * belongs to, which a symbolic link may not leave.
 */
export async function loadConfig(path: string, root = dirname(path)): Promise<ConfigValidation & { missing?: boolean }> {
  const read = await readBoundedFile(path, root);
  if (read.diagnostic) return { errors: [read.diagnostic], warnings: [], ...(read.missing ? { missing: true } : {}) };
  return validateBounded({ kind: 'config', text: read.text, file: path });
}

/**
 * Reads and validates a worktree's profile file. A missing file is not an error: the
 * worktree then runs the config's default profile (`profile` is undefined, no errors).
 * `reading` is the file's read already under way (started while the config loaded).
 */
export async function loadProfile(path: string, config: ProjectConfig, root = dirname(dirname(path)), reading = readBoundedFile(path, root)): Promise<ProfileValidation> {
  const read = await reading;
  if (read.missing) return { errors: [], warnings: [] };
  if (read.diagnostic) return { errors: [read.diagnostic], warnings: [] };
  return validateBounded({ kind: 'profile', text: read.text, file: path, config });
}

/**
 * Applies `change` to a worktree's profile file and writes it atomically (temp file + rename, so
 * the daemon's watcher never reads half a file); every key the change does not name, and the
 * file's comments, stay (see {@link editProfileText}). Keeps `.devproxy/` out of git with a
 * `.gitignore` of its own. Returns the file's path.
 */
export async function writeProfile(worktree: string, change: ProfileChange): Promise<string> {
  const dir = join(worktree, STATE_DIR);
  await writeFileAtomic(join(dir, '.gitignore'), '# Written by devproxy: this folder holds per-worktree state, never committed.\n*\n');
  const path = profilePath(worktree);
  const current = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  await writeFileAtomic(path, editProfileText(current, change));
  return path;
}
