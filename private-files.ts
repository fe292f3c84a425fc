/**
 * Folders and files only their owner may read: `$DEVPROXY_HOME` and what it holds (the admin
 * token, logs of services whose environment carries secrets, derived compose files with resolved
 * `${env:…}` values). Every creator under the home goes through here, so no folder is made with
 * the umask's 0755 and no log or state file with 0644. At the root because every room that keeps
 * files in the home (daemon, cli, runtime, workspace, worktrees, certs) uses it.
 */
import { closeSync, fchmodSync, fstatSync, openSync } from 'node:fs';
import { chmod, mkdir, stat } from 'node:fs/promises';

/** Mode of every folder devproxy makes in its home. */
export const PRIVATE_DIR_MODE = 0o700;
/** Mode of every file devproxy writes in its home that may hold a secret or a log. */
export const PRIVATE_FILE_MODE = 0o600;
/** Permission bits that let the group or other users in. */
const SHARED_BITS = 0o077;

/**
 * Creates `dir` (and missing parents) with mode 0700, and tightens it to 0700 when it already
 * exists wider: mkdir's mode is masked by the umask and ignored for an existing folder. Answers
 * the mode it found when that let the group or others in (the caller may say so), else undefined.
 */
export async function makePrivateDir(dir: string): Promise<number | undefined> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const mode = (await stat(dir)).mode & 0o777;
  if ((mode & SHARED_BITS) === 0) return undefined;
  await chmod(dir, PRIVATE_DIR_MODE);
  return mode;
}

/**
 * Opens `path` for appending (a log), created with mode 0600; a file that exists with a wider
 * mode (written by an older devproxy, or under another umask) is tightened to 0600. Answers the
 * descriptor; the caller closes it.
 */
export function openPrivateLog(path: string): number {
  const fd = openSync(path, 'a', PRIVATE_FILE_MODE);
  try {
    if ((fstatSync(fd).mode & SHARED_BITS) !== 0) fchmodSync(fd, PRIVATE_FILE_MODE);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return fd;
}

/** `mode` as `chmod` spells it (`0755`), for messages. */
export function octalMode(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}
