import { chmod, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (where bin/, dist/ and node_modules/ are). */
const PROJECT_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * Child-process options that drop to `nobody` when the tests run as root (root ignores mode
 * bits, so permission errors cannot happen to it), and run as ourselves otherwise.
 */
export const UNPRIVILEGED: { uid?: number; gid?: number } = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

/**
 * Lets `nobody` reach the project's compiled code: a clone inside a 0700 folder (what
 * `mktemp -d` makes) is out of its reach. Adds search permission (o+x) to every ancestor of the
 * project root that lacks it, and returns the undo. Does nothing when not running as root.
 */
export async function letUnprivilegedReachProject(): Promise<() => Promise<void>> {
  const changed: Array<{ dir: string; mode: number }> = [];
  if (UNPRIVILEGED.uid !== undefined) {
    for (let dir = PROJECT_ROOT; ; dir = dirname(dir)) {
      const mode = (await stat(dir)).mode & 0o7777;
      if ((mode & 0o001) === 0) {
        await chmod(dir, mode | 0o001);
        changed.push({ dir, mode });
      }
      if (dirname(dir) === dir) break;
    }
  }
  return async () => {
    for (const { dir, mode } of changed.reverse()) await chmod(dir, mode);
  };
}
