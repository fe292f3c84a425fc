/**
 * Reading the ends of log files without loading them whole: dev servers can write megabytes,
 * and only the last lines are ever shown.
 */
import { open } from 'node:fs/promises';

/** Most bytes read from the end of a log file to find its last lines. */
export const LOG_TAIL_BYTES = 256 * 1024;

/**
 * The text of `path` from byte `from` to its end, at most the last `maxBytes` of it, with the
 * file size at the time of reading. A missing file reads as empty.
 */
export async function readLogTail(path: string, from = 0, maxBytes = LOG_TAIL_BYTES): Promise<{ text: string; size: number }> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return { text: '', size: 0 };
  }
  try {
    const size = (await handle.stat()).size;
    const start = Math.max(from, size - maxBytes, 0);
    const buffer = Buffer.alloc(Math.max(0, size - start));
    await handle.read(buffer, 0, buffer.length, start);
    return { text: buffer.toString('utf8'), size };
  } finally {
    await handle.close();
  }
}
