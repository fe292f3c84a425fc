/**
 * Which worktrees `devproxy down` stopped: `$DEVPROXY_HOME/down.json`, `{"worktrees": [path…]}`.
 * The profile files stay as they are (they say what runs when the worktree is up again); the
 * daemon watches this file and routes a down worktree's services remote until `up` or `use`
 * takes it out of the list. Read tolerantly: a torn file counts as "nothing is down".
 */
import { homePaths } from '../home-paths.js';
import { makePrivateDir } from '../private-files.js';
import { readJsonState, writeJsonState } from '../runtime/json-state.js';
import { acquireLock } from './home.js';

/** Worktree paths that are down. */
export async function readDownWorktrees(home: string): Promise<Set<string>> {
  const state = await readJsonState<{ worktrees?: unknown }>(homePaths(home).down, {});
  return new Set(Array.isArray(state.worktrees) ? state.worktrees.filter((p): p is string => typeof p === 'string') : []);
}

/** Changes the down list under a lock; writes only when it changed. Answers the new list. */
export async function updateDownWorktrees(home: string, change: (down: Set<string>) => void): Promise<Set<string>> {
  const { down: file, downLock } = homePaths(home);
  await makePrivateDir(home);
  const release = await acquireLock(downLock);
  try {
    const down = await readDownWorktrees(home);
    const before = JSON.stringify([...down].sort());
    change(down);
    if (JSON.stringify([...down].sort()) !== before) await writeJsonState(file, { worktrees: [...down].sort() });
    return down;
  } finally {
    await release();
  }
}
