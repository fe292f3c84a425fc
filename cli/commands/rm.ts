import { DevproxyError } from '../../errors.js';
import { LocalRuntime } from '../../runtime/local-runtime.js';
import { checkFeatureRemoval, removeFeatureWorktree } from '../../worktrees/feature-worktree.js';
import { callDaemon, home, selectWorktree } from '../context.js';

/** Removing stops every container and process of the worktree, each with its stop grace. */
const REMOVE_ANSWER_TIMEOUT_MS = 60_000;

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

/** The work of `rm`, shared by the CLI and the MCP server. */
export async function removeFeature(feature: string, opts: RmOptions): Promise<RmResult> {
  const { worktree, location } = await selectWorktree({ ...(opts.dir ? { dir: opts.dir } : {}), worktree: feature });
  const removal = await checkFeatureRemoval({ main: location.main, path: worktree.path, force: opts.force === true, deleteBranch: opts.deleteBranch === true });
  const viaDaemon = await callDaemon('/api/remove-worktree', { method: 'POST', body: { path: worktree.path }, timeoutMs: REMOVE_ANSWER_TIMEOUT_MS }).catch((error: unknown) => {
    if ((error as DevproxyError).code === 'DEVPROXY_ERR_UNKNOWN_WORKTREE') return undefined;
    throw error;
  });
  if (!viaDaemon) {
    const runtime = new LocalRuntime({ home: home(), memoryIntervalMs: 0 });
    try {
      await runtime.removeWorktree(worktree.path);
    } finally {
      await runtime.close();
    }
  }
  await removeFeatureWorktree(removal);
  const { branch } = removal;
  return { removed: worktree.path, worktree: worktree.slug, branchDeleted: opts.deleteBranch === true && branch !== undefined ? branch : null, branch: branch ?? null };
}
