import { currentStatus } from '../context.js';
import { renderStatus } from '../format.js';

/** `devproxy status` (alias `ls`): every worktree, its profile and each service's route. */
export async function status(opts: { json?: boolean; probe?: boolean }): Promise<void> {
  const report = await currentStatus(opts.probe !== false);
  console.log(opts.json ? JSON.stringify(report, null, 2) : renderStatus(report));
}
