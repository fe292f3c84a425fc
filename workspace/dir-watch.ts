import { watch, type FSWatcher } from 'node:fs';
import { lstat, readlink, realpath } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { DevproxyError } from '../errors.js';
import { isWithin } from '../path-within.js';

/**
 * One directory watched through the OS (inotify on Linux): every entry created, written, renamed
 * over or deleted in it is reported by name, at once and without throttling. A directory, not a
 * file, is watched: a watch on a file follows its inode and goes deaf after an atomic replace.
 */
export interface DirWatch {
  /** The directory watched (a symbolic link resolved to it). */
  readonly path: string;
  /** Its inode when the watch began: another inode at the same path means it was replaced. */
  readonly ino: number;
  /**
   * False once closed, by {@link DirWatch.close} or after an error. A watch whose directory was
   * deleted stays true though deaf: its owner renews it on the event that reports the deletion.
   */
  readonly open: boolean;
  close(): void;
}

/** Where a directory stands: a real directory (its resolved path and inode), or none to watch. */
export type DirState = { path: string; ino: number } | undefined;

/**
 * Finds the directory to watch at `path`, following a symbolic link (a `$DEVPROXY_HOME` kept
 * elsewhere). Given `root`, only to a directory inside it: a branch may commit `.devproxy` → `/`,
 * and devproxy must not watch, nor read, outside the worktree (the loader refuses by that rule).
 */
export async function dirState(path: string, root?: string): Promise<DirState> {
  try {
    const link = await lstat(path);
    if (link.isDirectory()) return { path, ino: link.ino };
    if (!link.isSymbolicLink()) return undefined;
    const resolved = await realpath(path);
    if (root !== undefined && !isWithin(await realpath(root), resolved)) return undefined;
    const target = await lstat(resolved);
    return target.isDirectory() ? { path: resolved, ino: target.ino } : undefined;
  } catch {
    return undefined;
  }
}

/** Symbolic links followed to find where a directory is made; a loop of links ends there. */
const MAX_LINK_HOPS = 8;

/** Where a directory is made and deleted: an entry's name in the folder that holds it. */
export interface DirApproach {
  /** The folder to watch (from {@link dirState}). */
  dir: NonNullable<DirState>;
  /** The name of the entry there that is, or leads to, the directory. */
  name: string;
  /**
   * The symbolic links followed after `path` itself (`path` → a → b → the directory: a and b),
   * each as the folder holding it and its name there: one re-pointed leads elsewhere, and only a
   * watch on its folder hears of it. At most {@link MAX_LINK_HOPS} − 1; given `root`, only those
   * in a folder inside it.
   */
  links: { dir: string; name: string }[];
}

/**
 * Where the directory at `path` is made and deleted: the nearest existing folder on the way to
 * it, and the name of the entry there leading to it. A symbolic link is followed to its target,
 * dangling or not: a watch on the target itself goes deaf when it is deleted, and a watch on the
 * folder holding the link never hears of it. Given `root`, only a folder inside it (see
 * {@link dirState}); undefined when there is none to watch.
 */
export async function dirApproach(path: string, root?: string): Promise<DirApproach | undefined> {
  try {
    let target = path;
    const links: DirApproach['links'] = [];
    const realRoot = root === undefined ? undefined : await realpath(root);
    for (let hop = 0; hop < MAX_LINK_HOPS; hop++) {
      const entry = await lstat(target).catch(() => undefined);
      if (!entry?.isSymbolicLink()) break;
      // Given `root`, a link in a folder outside it is followed but not listed: never watched.
      if (hop > 0 && (realRoot === undefined || isWithin(realRoot, await realpath(dirname(target))))) links.push({ dir: dirname(target), name: basename(target) });
      target = resolve(dirname(target), await readlink(target));
    }
    for (let name = basename(target), folder = dirname(target); name !== ''; name = basename(folder), folder = dirname(folder)) {
      const dir = await dirState(folder);
      if (dir === undefined) continue;
      if (realRoot !== undefined && !isWithin(realRoot, await realpath(dir.path))) return undefined;
      return { dir, name, links };
    }
  } catch {
    // Gone while followed: whoever asked asks again on the event that reported it.
  }
  return undefined;
}

/**
 * Watches `dir` (from {@link dirState}); `onEvent` gets the name of the entry that changed, or the
 * directory's own name when it was itself deleted or moved. A watch that fails later is closed
 * and handed to `onError` (never thrown: a watcher must not take the daemon down). Undefined when
 * the directory vanished since {@link dirState}; throws, mapped by {@link watchFailure}, when the
 * watch cannot start.
 */
export function watchDir(dir: NonNullable<DirState>, onEvent: (name: string | undefined) => void, onError: (error: Error) => void): DirWatch | undefined {
  let watcher: FSWatcher;
  try {
    watcher = watch(dir.path, { persistent: true }, (_event, name) => onEvent(name ?? undefined));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw watchFailure(dir.path, error);
  }
  const handle = {
    path: dir.path,
    ino: dir.ino,
    open: true,
    close() {
      handle.open = false;
      watcher.close();
    },
  };
  watcher.on('error', (error) => {
    handle.close();
    onError(watchFailure(dir.path, error));
  });
  return handle;
}

/**
 * What a failed watch means for a person: the inotify limit (ENOSPC: watches
 * are counted per user, across every program) becomes `DEVPROXY_ERR_WATCH_LIMIT`, naming the sysctl to raise; anything else keeps its own message.
 */
export function watchFailure(path: string, error: unknown): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC') {
    return new DevproxyError('DEVPROXY_ERR_WATCH_LIMIT', `cannot watch ${path}: the system's limit of inotify watches is reached (ENOSPC); edits there are found by polling once a second meanwhile`, { cause: error });
  }
  return new Error(`cannot watch ${path}: ${(error as Error).message}`, { cause: error });
}

