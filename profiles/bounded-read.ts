import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { lstat, open, realpath } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isWithin } from '../path-within.js';
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
    // Asked together: each answer costs the daemon an event-loop turn, and a flip waits for them.
    // Resolved whole, so that a linked parent folder (`.devproxy` → /somewhere) counts too.
    const [link, resolved, realRoot] = await Promise.all([lstat(path), realpath(path).catch(() => undefined), realpath(root).catch(() => undefined)]);
    if (link.isDirectory()) return { diagnostic: fileProblem(path, 'a directory stands where the file should be', 'remove the directory and write the file') };
    if (resolved === undefined) return { diagnostic: fileProblem(path, 'the file is a symbolic link to nothing (its target does not exist)', 'replace the link with the file itself') };
    if (realRoot === undefined || resolved === realRoot || !isWithin(realRoot, resolved)) {
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
      const read = await runCappedReads(stats.size, MAX_FILE_BYTES, async (step) => (await handle.read(step.buffer, step.offset, step.length, step.offset)).bytesRead);
      if (read.tooLarge !== undefined) return { diagnostic: tooLarge(path, read.tooLarge) };
      const bytes = read.bytes;
      if (bytes.includes(0)) {
        return { diagnostic: fileProblem(path, 'the file holds binary data, not YAML', 'restore it from git or rewrite it (see the README for the format)') };
      }
      return { text: bytes.toString('utf8') };
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      // Missing behind a folder that links out (`.devproxy` → /elsewhere) is refused all the same:
      // the daemon does not watch outside the worktree, so a file written there later would go unseen.
      const away = await linkedAway(path, root);
      if (away !== undefined) return { diagnostic: fileProblem(path, `the file's folder is a symbolic link to ${away}, outside the worktree; devproxy does not follow it`, 'replace the link with a folder inside the worktree (`git rm` it if a branch committed it)') };
      return { missing: true, diagnostic: fileProblem(path, 'the file does not exist', 'create it (`devproxy init` scaffolds devproxy.yaml)') };
    }
    if (code === 'EISDIR') return { diagnostic: fileProblem(path, 'a directory stands where the file should be', 'remove the directory and write the file') };
    if (code === 'EACCES' || code === 'EPERM') return { diagnostic: fileProblem(path, 'permission denied reading the file', `make it readable: chmod u+r ${path}`) };
    if (code === 'ELOOP') return { diagnostic: fileProblem(path, 'the file was replaced by a symbolic link while devproxy read it', 'replace the link with a regular file inside the worktree') };
    return { diagnostic: fileProblem(path, `cannot read the file (${code ?? String(error)})`, 'check the path and its permissions') };
  }
}

/** One read asked for by {@link cappedReads}: fill `buffer` from `offset` with `length` bytes at file position `offset`. */
interface ReadStep {
  buffer: Buffer;
  offset: number;
  length: number;
}

/** What a capped read gave: the bytes, or how many it had read when it went over the cap. */
type CappedRead = { bytes: Buffer; tooLarge?: undefined } | { bytes?: undefined; tooLarge: number };

/**
 * The reads of an opened regular file of `size` bytes (its fstat size), at most `maxBytes` kept,
 * as steps: each yields the read to make and is given the bytes it read. One plan for the
 * asynchronous and the synchronous reader, so both apply the cap the same way.
 */
function* cappedReads(size: number, maxBytes: number): Generator<ReadStep, CappedRead, number> {
  // Sized by the file, not by the cap (a 1 MiB buffer per read, two reads per worktree, made a
  // start with 200 worktrees churn through 400 MiB). One byte more than the size, to notice a
  // file that grew since fstat; the buffer then grows with it, up to one byte over the cap.
  let buffer = Buffer.alloc(Math.min(size, maxBytes) + 1);
  let length = 0;
  for (;;) {
    if (length === buffer.length) {
      const grown = Buffer.alloc(Math.min(buffer.length * 2, maxBytes + 1));
      buffer.copy(grown);
      buffer = grown;
    }
    const wanted = buffer.length - length;
    const bytesRead = yield { buffer, offset: length, length: wanted };
    length += bytesRead;
    if (length > maxBytes) return { tooLarge: length };
    // A regular file reads short only at its end: no further read is needed to find it.
    if (bytesRead < wanted) return { bytes: buffer.subarray(0, length) };
  }
}

async function runCappedReads(size: number, maxBytes: number, read: (step: ReadStep) => Promise<number>): Promise<CappedRead> {
  const steps = cappedReads(size, maxBytes);
  let step = steps.next();
  while (!step.done) step = steps.next(await read(step.value));
  return step.value;
}

/** What {@link readSmallFileSync} gave: the text, or why there is none, worded to follow "which" or "the file X". */
export type SmallFileRead = { text: string; problem?: undefined } | { text?: undefined; problem: string };

/**
 * Reads a small file that a committed file names (a `${file:}` secret, a `ca:` bundle) on the
 * calling thread, within bounds: `stat` first, so that a FIFO, a device, a socket or a folder is
 * refused before any `open`; then opened `O_NONBLOCK` (a file swapped for a FIFO since the stat
 * opens at once instead of waiting for a writer), `fstat`ed again, and at most `maxBytes` read.
 * Synchronous because the callers resolve synchronously; bounded this way, it costs at most one
 * read of `maxBytes` from a regular file and can never wait on a writer or read without end.
 * Symbolic links are followed: unlike devproxy.yaml, these files may live anywhere (an absolute
 * path is allowed), so a link reaches nothing a path could not.
 */
export function readSmallFileSync(path: string, maxBytes: number): SmallFileRead {
  let fd: number | undefined;
  try {
    const found = statSync(path);
    const problem = refusal(found, maxBytes);
    if (problem !== undefined) return { problem };
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const opened = fstatSync(fd);
    const swapped = refusal(opened, maxBytes);
    if (swapped !== undefined) return { problem: swapped };
    const steps = cappedReads(opened.size, maxBytes);
    let step = steps.next();
    while (!step.done) step = steps.next(readSync(fd, step.value.buffer, step.value.offset, step.value.length, step.value.offset));
    const read = step.value;
    if (read.tooLarge !== undefined) return { problem: tooLargeSmall(read.tooLarge, maxBytes) };
    return { text: read.bytes.toString('utf8') };
  } catch (error) {
    return { problem: `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})` };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function refusal(stats: Kind & { isFile(): boolean; size: number }, maxBytes: number): string | undefined {
  if (!stats.isFile()) return `is ${kindOf(stats)}, not a regular file`;
  if (stats.size > maxBytes) return tooLargeSmall(stats.size, maxBytes);
  return undefined;
}

function tooLargeSmall(size: number, maxBytes: number): string {
  return `is ${size} bytes; devproxy reads at most ${maxBytes}`;
}

/** Where the folder of `path` leads when a symbolic link takes it out of `root`; undefined inside. */
async function linkedAway(path: string, root: string): Promise<string | undefined> {
  const [folder, realRoot] = await Promise.all([realpath(dirname(path)).catch(() => undefined), realpath(root).catch(() => undefined)]);
  if (folder === undefined || realRoot === undefined || isWithin(realRoot, folder)) return undefined;
  return folder;
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
