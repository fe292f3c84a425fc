import { DevproxyError } from '../../errors.js';
import { LocalRuntime } from '../../runtime/local-runtime.js';
import { checkFeatureRemoval, removeFeatureWorktree } from '../../worktrees/feature-worktree.js';
import type { StatusReport } from '../../workspace/status.js';
import { readDownWorktrees, updateDownWorktrees } from '../../workspace/down-state.js';
import { callDaemon, home, selectWorktree } from '../context.js';
import { stopInstances } from './down.js';

/** Removing stops every container and process of the worktree, each with its stop grace. */
const REMOVE_ANSWER_TIMEOUT_MS = 60_000;
/** The daemon notices a removed worktree within its git rescan's debounce; this bounds the wait. */
const UNTRACK_TIMEOUT_MS = 10_000;
const UNTRACK_POLL_MS = 50;

/** Options of `devproxy rm`. */
export interface RmOptions {
  /** Remove even with uncommitted changes (they are lost). */
  force?: boolean;
  /** Also delete the worktree's branch. */
  deleteBranch?: boolean;
  dir?: string;
  json?: boolean;
}

/** What `rm` removed. */
export interface RmResult {
  removed: string;
  worktree: string;
  /** The branch deleted, or null when it was kept. */
  branchDeleted: string | null;
  /** The worktree's branch when it had one (kept unless `branchDeleted`). */
  branch: string | null;
}

/**
 * `devproxy rm <feature>`: stops and removes the worktree's containers and processes (through
 * the daemon, or directly when none runs), then the worktree; the branch only when asked.
 * Everything that can refuse is checked first, so a refused `rm` leaves the worktree serving.
 */
export async function rm(feature: string, opts: RmOptions): Promise<void> {
  const result = await removeFeature(feature, opts);
  const { branch } = result;
  console.log(opts.json ? JSON.stringify(result, null, 2) : `removed ${result.worktree} (${result.removed}): its containers and processes are stopped${result.branchDeleted ? `, branch ${branch} deleted` : branch ? `; branch ${branch} kept` : ''}`);
}

/** Stops what the worktree runs and gives its ports back: through the daemon, or here when none knows it. */
async function stopAndReleasePorts(path: string): Promise<void> {
  const viaDaemon = await callDaemon('/api/remove-worktree', { method: 'POST', body: { path }, timeoutMs: REMOVE_ANSWER_TIMEOUT_MS }).catch((error: unknown) => {
    if ((error as DevproxyError).code === 'DEVPROXY_ERR_UNKNOWN_WORKTREE') return undefined;
    throw error;
  });
  if (viaDaemon) return;
  const runtime = new LocalRuntime({ home: home(), memoryIntervalMs: 0 });
  try {
    await runtime.removeWorktree(path);
  } finally {
    await runtime.close();
  }
}

/** Waits (bounded) until a running daemon no longer routes the worktree at `path`. */
async function waitUntilUntracked(path: string): Promise<void> {
  const deadline = Date.now() + UNTRACK_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const report = await callDaemon<StatusReport>('/api/status?probe=0');
    if (!report?.worktrees.some((w) => w.path === path)) return;
    await new Promise((resolve) => setTimeout(resolve, UNTRACK_POLL_MS));
  }
}

/** The work of `rm`, shared by the CLI and the MCP server. */
export async function removeFeature(feature: string, opts: RmOptions): Promise<RmResult> {
  const { worktree, location } = await selectWorktree({ ...(opts.dir ? { dir: opts.dir } : {}), worktree: feature });
  const removal = await checkFeatureRemoval({ main: location.main, path: worktree.path, force: opts.force === true, deleteBranch: opts.deleteBranch === true });
  // Down first, and waited for: while git deletes the worktree's files the daemon reloads it
  // (devproxy.yaml going away keeps the last good config) and would reconcile it back to its
  // profile, starting what was just stopped; a down worktree reconciles to no local instance.
  const wasDown = (await readDownWorktrees(home())).has(worktree.path);
  await updateDownWorktrees(home(), (down) => down.add(worktree.path));
  try {
    await stopInstances([worktree.path]);
    await stopAndReleasePorts(worktree.path);
    await removeFeatureWorktree(removal);
  } catch (error) {
    // Refused before the worktree went: it serves again as before.
    if (!wasDown) await updateDownWorktrees(home(), (down) => down.delete(worktree.path));
    throw error;
  }
  // Unmarked once the daemon forgot the worktree: a path that comes back (`new` with the same
  // name) must not start down, and unmarked earlier the worktree would come up before it went.
  try {
    await waitUntilUntracked(worktree.path);
  } finally {
    await updateDownWorktrees(home(), (down) => down.delete(worktree.path));
  }
  const { branch } = removal;
  return { removed: worktree.path, worktree: worktree.slug, branchDeleted: opts.deleteBranch === true && branch !== undefined ? branch : null, branch: branch ?? null };
}
