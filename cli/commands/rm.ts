import { DevproxyError } from '../../errors.js';
import { LocalRuntime } from '../../runtime/local-runtime.js';
import { checkFeatureRemoval, removeFeatureWorktree } from '../../worktrees/feature-worktree.js';
import { callDaemon, home, selectWorktree } from '../context.js';

/** Removing stops every container and process of the worktree, each with its stop grace. */
const REMOVE_ANSWER_TIMEOUT_MS = 60_000;

/**
 * `devproxy rm <feature>`: stops and removes the worktree's containers and processes (through
 * the daemon, or directly when none runs), then the worktree; the branch only when asked.
 * Everything that can refuse is checked first, so a refused `rm` leaves the worktree serving.
 */
export async function rm(feature: string, opts: { force?: boolean; deleteBranch?: boolean; dir?: string; json?: boolean }): Promise<void> {
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
  const result = { removed: worktree.path, worktree: worktree.slug, branchDeleted: opts.deleteBranch === true && branch !== undefined ? branch : null };
  console.log(opts.json ? JSON.stringify(result, null, 2) : `removed ${worktree.slug} (${worktree.path}): its containers and processes are stopped${result.branchDeleted ? `, branch ${branch} deleted` : branch ? `; branch ${branch} kept` : ''}`);
}
