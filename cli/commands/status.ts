import { currentStatus } from '../context.js';
import { renderStatus } from '../format.js';

/**
 * `devproxy status` (alias `ls`): every worktree, its profile and each service's route. The
 * table keeps one line per service; `--verbose` adds multi-line problems in full, `--json` has them too.
 */
export async function status(opts: { json?: boolean; probe?: boolean; verbose?: boolean }): Promise<void> {
  const report = await currentStatus(opts.probe !== false);
  console.log(opts.json ? JSON.stringify(report, null, 2) : renderStatus(report, { verbose: opts.verbose === true }));
}
