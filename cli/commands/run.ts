import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { resolve } from 'node:path';
import { nodeOptionsWithPreload } from '../../environment/node-options.js';
import { resolveEnvironment } from '../../environment/worktree-env.js';
import { DevproxyError } from '../../errors.js';
import type { WorktreeSelection } from '../context.js';
import { loadEnvironment } from './env.js';

/** Signals passed on to the command; Windows has no way to send them to a child. */
const FORWARDED_SIGNALS: NodeJS.Signals[] = process.platform === 'win32' ? [] : ['SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGINT'];

/**
 * `devproxy run -- <command…>`: runs the command with the worktree's environment (references
 * resolved) and NODE_OPTIONS loading the localhost preload, in `-C <dir>` or the current folder.
 * stdio is shared, signals are passed on, and devproxy exits with the command's exit code
 * (128 + signal number when a signal ended it).
 */
export async function run(command: string[], opts: WorktreeSelection): Promise<void> {
  const [file, ...args] = command;
  if (!file) throw new DevproxyError('DEVPROXY_ERR_USAGE', 'devproxy run needs a command: devproxy run -- <command> [args…]');
  const { environment, baseDir } = await loadEnvironment(opts);
  const env = {
    ...process.env,
    ...resolveEnvironment(environment, { env: process.env, baseDir }),
    NODE_OPTIONS: nodeOptionsWithPreload(process.env.NODE_OPTIONS),
  };
  const child = spawn(file, args, {
    cwd: resolve(opts.dir ?? process.cwd()),
    env,
    stdio: 'inherit',
    // .cmd/.bat launchers (npm, npx) only start through the shell on Windows.
    shell: process.platform === 'win32',
  });

  const forward = (signal: NodeJS.Signals) => {
    // Ctrl-C on a terminal already reaches the child through the foreground process group;
    // sending it again would make "press Ctrl-C twice to force" servers quit hard.
    if (signal === 'SIGINT' && process.stdin.isTTY) return;
    child.kill(signal);
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  try {
    process.exitCode = await new Promise<number>((done, fail) => {
      child.once('error', (error: NodeJS.ErrnoException) =>
        fail(new DevproxyError('DEVPROXY_ERR_RUN_FAILED', `cannot run "${file}" (${error.code ?? error.message})`, { cause: error })),
      );
      child.once('exit', (code, signal) => done(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
    });
  } finally {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
  }
}
