import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, link, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Writes `data` to `path` so that readers see either the old or the new file, never a torn one:
 * a temp file in the same directory is written, flushed and renamed over the target. `mode`
 * applies to the new file (default 0o644; secrets pass 0o600).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<void> {
  const temp = await tempBeside(path);
  await writeSynced(temp, data, options.mode ?? 0o644);
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Creates `path` only if nothing stands there yet, atomically: the content (`data`, or a copy of
 * the file `copyOf`) goes to a temp file in the same directory, which is then published with
 * link(), which fails on an existing path instead of replacing it. An interrupted call leaves no
 * half-written file behind. True when it created the file, false when something existed.
 */
export async function createFileIfAbsent(path: string, content: { data: string | Uint8Array } | { copyOf: string }): Promise<boolean> {
  const temp = await tempBeside(path);
  try {
    if ('copyOf' in content) await copyFile(content.copyOf, temp, constants.COPYFILE_EXCL);
    else await writeSynced(temp, content.data, 0o644);
    await link(temp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await rm(temp, { force: true });
  }
}

/** A fresh temp path in `path`'s directory (created if missing), so a rename or link stays on one file system. */
async function tempBeside(path: string): Promise<string> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  return join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes a new temp file (never an existing one) and flushes it to disk before it is published. */
async function writeSynced(temp: string, data: string | Uint8Array, mode: number): Promise<void> {
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
