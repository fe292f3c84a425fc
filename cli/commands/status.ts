import type { StatusReport } from '../../workspace/status.js';
import { currentStatus, selectWorktree, type WorktreeSelection } from '../context.js';
import { renderStatus } from '../format.js';

/**
 * `devproxy status` (alias `ls`): every worktree (or the one of `--worktree`), its profile and each
 * service's route. The table keeps one line per service; `--verbose` adds multi-line problems in
 * full, `--json` has them too.
 */
export async function status(opts: { json?: boolean; probe?: boolean; verbose?: boolean; worktree?: string }): Promise<void> {
  const report = opts.worktree ? await worktreeStatus({ worktree: opts.worktree }, opts.probe !== false) : await currentStatus(opts.probe !== false);
  console.log(opts.json ? JSON.stringify(report, null, 2) : renderStatus(report, { verbose: opts.verbose === true }));
}

/** The status report narrowed to one worktree (same shape as the whole); shared by the CLI and the MCP server. */
export async function worktreeStatus(selection: WorktreeSelection, probe: boolean): Promise<StatusReport> {
  const { worktree } = await selectWorktree(selection);
  const report = await currentStatus(probe);
  return { ...report, worktrees: report.worktrees.filter((w) => w.path === worktree.path) };
}
