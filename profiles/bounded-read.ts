import { constants } from 'node:fs';
import { lstat, open, realpath } from 'node:fs/promises';
import { relative, isAbsolute, sep } from 'node:path';
import type { Diagnostic } from './schema.js';

/**
 * Largest devproxy.yaml or profile file devproxy reads (bytes). Real ones are a few KiB; the cap
 * keeps a committed symlink to /dev/zero or a 200 MB file from exhausting the daemon's memory.
 */
export const MAX_FILE_BYTES = 1024 * 1024;

/** What reading a committed or per-worktree file gave: its text, or why there is none. */
export type BoundedRead = { text: string; missing?: undefined; diagnostic?: undefined } | { text?: undefined; missing?: boolean; diagnostic: Diagnostic };

/**
 * Reads a devproxy file that a branch may have committed, without trusting it: only a regular
 * file (a FIFO, a device or a socket is refused after `lstat`, before any `open` that could
 * block a libuv thread for ever), opened `O_NONBLOCK | O_NOFOLLOW`, at most {@link MAX_FILE_BYTES}
 * read. A symbolic link is followed only when its target is a regular file inside `root` (the
 * worktree): a link out of the repository is refused and named.
 */
export async function readBoundedFile(path: string, root: string): Promise<BoundedRead> {
  let target = path;
  try {
    const link = await lstat(path);
    if (link.isDirectory()) return { diagnostic: fileProblem(path, 'a directory stands where the file should be', 'remove the directory and write the file') };
    // Resolved whole, so that a linked parent folder (`.devproxy` → /somewhere) counts too.
    const resolved = await realpath(path).catch(() => undefined);
    if (resolved === undefined) return { diagnostic: fileProblem(path, 'the file is a symbolic link to nothing (its target does not exist)', 'replace the link with the file itself') };
    const inside = await realpath(root).then((r) => isInside(r, resolved), () => false);
    if (!inside) {
      const what = link.isSymbolicLink() ? 'the file is a symbolic link' : 'the file is reached through a symbolic link';
      return { diagnostic: fileProblem(path, `${what} to ${resolved}, outside the worktree; devproxy does not follow it`, 'replace the link with a regular file inside the worktree (`git rm` it if a branch committed it)') };
    }
    target = resolved;
    const followed = link.isSymbolicLink() ? await lstat(target) : link;
    if (!followed.isFile()) return { diagnostic: notRegular(path, kindOf(followed), link.isSymbolicLink() ? ` (through the symbolic link to ${resolved})` : '') };
    // O_NONBLOCK: if the file was swapped for a FIFO since the lstat, open() returns at once
    // instead of waiting for a writer; O_NOFOLLOW: a link swapped in is refused (ELOOP).
    const handle = await open(target, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) return { diagnostic: notRegular(path, kindOf(stats), '') };
      if (stats.size > MAX_FILE_BYTES) return { diagnostic: tooLarge(path, stats.size) };
      // The size may grow between fstat and read: read one byte more than allowed to notice.
      const buffer = Buffer.alloc(MAX_FILE_BYTES + 1);
      let length = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length > MAX_FILE_BYTES) return { diagnostic: tooLarge(path, length) };
      }
      const bytes = buffer.subarray(0, length);
      if (bytes.includes(0)) {
        return { diagnostic: fileProblem(path, 'the file holds binary data, not YAML', 'restore it from git or rewrite it (see the README for the format)') };
      }
      return { text: bytes.toString('utf8') };
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { missing: true, diagnostic: fileProblem(path, 'the file does not exist', 'create it (`devproxy init` scaffolds devproxy.yaml)') };
    if (code === 'EISDIR') return { diagnostic: fileProblem(path, 'a directory stands where the file should be', 'remove the directory and write the file') };
    if (code === 'EACCES' || code === 'EPERM') return { diagnostic: fileProblem(path, 'permission denied reading the file', `make it readable: chmod u+r ${path}`) };
    if (code === 'ELOOP') return { diagnostic: fileProblem(path, 'the file was replaced by a symbolic link while devproxy read it', 'replace the link with a regular file inside the worktree') };
    return { diagnostic: fileProblem(path, `cannot read the file (${code ?? String(error)})`, 'check the path and its permissions') };
  }
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

type Kind = { isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean; isDirectory(): boolean };

function kindOf(stats: Kind): string {
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  if (stats.isDirectory()) return 'a directory';
  return 'not a regular file';
}

function notRegular(path: string, kind: string, via: string): Diagnostic {
  return fileProblem(path, `${kind} stands where the file should be${via}; devproxy reads only regular files`, 'remove it and write the file as a regular file');
}

function tooLarge(path: string, size: number): Diagnostic {
  return fileProblem(path, `the file is ${size} bytes or more; devproxy reads at most ${MAX_FILE_BYTES} bytes (1 MiB)`, 'shorten it: a devproxy file needs only a few KiB (see the README for the format)');
}

/** A diagnostic about a whole file (line 0). */
export function fileProblem(file: string, message: string, hint: string): Diagnostic {
  return { file, line: 0, column: 0, message, hint };
}
