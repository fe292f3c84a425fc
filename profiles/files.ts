import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import { editProfileText, type ProfileChange } from './profile-edit.js';
import type { Diagnostic, ProjectConfig } from './schema.js';
import { validateConfig, type ConfigValidation } from './validate-config.js';
import { validateProfile, type ProfileValidation } from './validate-profile.js';

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
 */
export async function loadConfig(path: string): Promise<ConfigValidation & { missing?: boolean }> {
  const read = await readText(path);
  if (read.diagnostic) return { errors: [read.diagnostic], warnings: [], ...(read.missing ? { missing: true } : {}) };
  return validateConfig(read.text, path);
}

/**
 * Reads and validates a worktree's profile file. A missing file is not an error: the
 * worktree then runs the config's default profile (`profile` is undefined, no errors).
 */
export async function loadProfile(path: string, config: ProjectConfig): Promise<ProfileValidation> {
  const read = await readText(path);
  if (read.missing) return { errors: [], warnings: [] };
  if (read.diagnostic) return { errors: [read.diagnostic], warnings: [] };
  return validateProfile(read.text, path, config);
}

async function readText(path: string): Promise<{ text: string; missing?: boolean; diagnostic?: undefined } | { text?: undefined; missing?: boolean; diagnostic: Diagnostic }> {
  try {
    const buffer = await readFile(path);
    if (buffer.includes(0)) {
      return { diagnostic: fileProblem(path, 'the file holds binary data, not YAML', 'restore it from git or rewrite it (see the README for the format)') };
    }
    return { text: buffer.toString('utf8') };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { missing: true, diagnostic: fileProblem(path, 'the file does not exist', 'create it (`devproxy init` scaffolds devproxy.yaml)') };
    if (code === 'EISDIR') return { diagnostic: fileProblem(path, 'a directory stands where the file should be', 'remove the directory and write the file') };
    if (code === 'EACCES' || code === 'EPERM') return { diagnostic: fileProblem(path, 'permission denied reading the file', `make it readable: chmod u+r ${path}`) };
    return { diagnostic: fileProblem(path, `cannot read the file (${code ?? String(error)})`, 'check the path and its permissions') };
  }
}

function fileProblem(file: string, message: string, hint: string): Diagnostic {
  return { file, line: 0, column: 0, message, hint };
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
