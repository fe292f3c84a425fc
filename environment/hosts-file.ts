import { access, constants, readFile, realpath, stat, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import { DevproxyError } from '../errors.js';

/** First line of devproxy's block in a hosts file. */
export const HOSTS_BLOCK_START = '# >>> devproxy (managed, do not edit) >>>';
/** Last line of devproxy's block in a hosts file. */
export const HOSTS_BLOCK_END = '# <<< devproxy <<<';

/** The system hosts file: `%SystemRoot%\System32\drivers\etc\hosts` on Windows, else /etc/hosts. */
export function defaultHostsPath(platform: NodeJS.Platform = process.platform, env: NodeJS.ProcessEnv = process.env): string {
  if (platform === 'win32') return join(env.SystemRoot ?? 'C:\\Windows', 'System32', 'drivers', 'etc', 'hosts');
  return '/etc/hosts';
}

/**
 * The block's lines for these hostnames, sorted and de-duplicated: one name per line and per
 * address (127.0.0.1 and ::1), since Windows reads at most 9 names from one line.
 */
export function renderBlock(hosts: Iterable<string>, eol = '\n'): string {
  const names = [...new Set([...hosts].map((h) => h.toLowerCase()))].sort();
  const lines = [HOSTS_BLOCK_START, ...names.map((n) => `127.0.0.1 ${n}`), ...names.map((n) => `::1 ${n}`), HOSTS_BLOCK_END];
  return lines.join(eol);
}

/** Where an existing block sits: `start` at its first character, `end` just after its end marker (not its line break). */
function findBlock(text: string, path: string): { start: number; end: number } | undefined {
  const startAt = lineStartOf(text, HOSTS_BLOCK_START);
  if (startAt === -1) return undefined;
  const endAt = lineStartOf(text, HOSTS_BLOCK_END, startAt);
  if (endAt === -1) {
    throw new DevproxyError('DEVPROXY_ERR_HOSTS_BLOCK_BROKEN', `${path} has the line "${HOSTS_BLOCK_START}" but no "${HOSTS_BLOCK_END}" after it`, {
      hint: `add the line "${HOSTS_BLOCK_END}" where devproxy's entries end (or delete them), then run the command again`,
    });
  }
  return { start: startAt, end: endAt + HOSTS_BLOCK_END.length };
}

/** Index of a line that is exactly `line` (CR allowed before its LF), from `from` on; -1 when none. */
function lineStartOf(text: string, line: string, from = 0): number {
  let at = text.indexOf(line, from);
  while (at !== -1) {
    const atLineStart = at === 0 || text[at - 1] === '\n';
    const next = text[at + line.length];
    const atLineEnd = next === undefined || next === '\n' || (next === '\r' && text[at + line.length + 1] === '\n');
    if (atLineStart && atLineEnd) return at;
    at = text.indexOf(line, at + 1);
  }
  return -1;
}

/**
 * The file's text with devproxy's block set to these hostnames (removed when there are none).
 * Pure. Every byte outside the block is kept: the file's line ending (CRLF when it has any) is
 * used inside the block, and a file without a final newline gets the block after a line break
 * of its own and no final newline, which removal takes away again.
 */
export function replaceBlock(text: string, hosts: Iterable<string>, path = 'the hosts file'): string {
  const names = [...hosts];
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const block = findBlock(text, path);
  if (names.length === 0) return block ? removeRange(text, block) : text;
  const rendered = renderBlock(names, eol);
  if (block) return text.slice(0, block.start) + rendered + text.slice(block.end);
  if (text === '') return rendered + eol;
  return text.endsWith('\n') ? text + rendered + eol : text + eol + rendered;
}

/** The file's text without devproxy's block. Pure; the inverse of adding one with {@link replaceBlock}. */
export function removeBlock(text: string, path = 'the hosts file'): string {
  return replaceBlock(text, [], path);
}

function removeRange(text: string, block: { start: number; end: number }): string {
  const after = text.slice(block.end);
  const lineBreak = after.startsWith('\r\n') ? 2 : after.startsWith('\n') ? 1 : 0;
  if (lineBreak > 0) return text.slice(0, block.start) + after.slice(lineBreak);
  // The block ends the file without a newline: it was added after a line break of its own.
  const before = text.slice(0, block.start);
  return before.replace(/\r?\n$/, '') + after;
}

/** What a hosts file update did. */
export interface HostsSyncResult {
  /** The file written (symlinks followed). */
  path: string;
  /** False when the file already said exactly this; nothing was written then. */
  changed: boolean;
  hosts: string[];
}

/**
 * Sets devproxy's block of the hosts file at `path` to `hosts` (none removes it): read, replace
 * the block, write a temp file in the same folder and rename it over the original, keeping its
 * mode. An unchanged file is not touched, so an up-to-date sync needs no privileges. Without
 * write access: DEVPROXY_ERR_HOSTS_NOT_WRITABLE whose hint is `privilegedCommand`.
 */
export async function syncHostsFile(path: string, hosts: readonly string[], privilegedCommand: string): Promise<HostsSyncResult> {
  const target = await realpath(path).catch(() => path);
  let before: string;
  try {
    before = await readFile(target, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw notWritable(target, error, privilegedCommand);
    before = '';
  }
  const after = replaceBlock(before, hosts, target);
  const sorted = [...new Set(hosts.map((h) => h.toLowerCase()))].sort();
  if (after === before) return { path: target, changed: false, hosts: sorted };
  const mode = await stat(target).then((s) => s.mode & 0o7777, () => 0o644);
  try {
    // rename() only needs the folder to be writable; a read-only file must stay read-only.
    if (before !== '') await access(target, constants.W_OK);
    await writeFileAtomic(target, after, { mode });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EBUSY' || code === 'EXDEV') {
      // A bind-mounted hosts file (inside a container) cannot be renamed over: write in place.
      await writeFile(target, after).catch((inPlace: unknown) => {
        throw notWritable(target, inPlace, privilegedCommand);
      });
      return { path: target, changed: true, hosts: sorted };
    }
    throw notWritable(target, error, privilegedCommand);
  }
  // The temp file was created under the umask; give the hosts file its old mode back.
  if (((await stat(target)).mode & 0o7777) !== mode) await chmod(target, mode);
  return { path: target, changed: true, hosts: sorted };
}

function notWritable(path: string, error: unknown, privilegedCommand: string): DevproxyError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new DevproxyError('DEVPROXY_ERR_HOSTS_NOT_WRITABLE', `cannot write ${path} (${code}): changing the hosts file needs administrator rights`, {
      hint: `run: ${privilegedCommand}`,
      cause: error,
    });
  }
  return new DevproxyError('DEVPROXY_ERR_HOSTS_NOT_WRITABLE', `cannot update ${path} (${code ?? String(error)})`, { hint: `check the file, or run: ${privilegedCommand}`, cause: error });
}
