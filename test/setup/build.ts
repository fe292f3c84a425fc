import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { letUnprivilegedReachProject } from '../helpers/unprivileged.js';

/**
 * Incremental emit: only what changed since the last run is compiled again. Kept inside dist/, so
 * whatever empties dist/ (`npm run build:package`) also forgets it and the next emit is complete.
 */
const BUILD_INFO = 'dist/.demo.tsbuildinfo';

/** Set on globalThis: the integration projects share one vitest process, and each runs this set-up. */
const BUILT = Symbol.for('devproxy.test.build');

/**
 * vitest global set-up of the integration projects: compiles the product and the demo into
 * dist/ (`tsconfig.demo.json`), because those tests run the real CLI, daemon, preload and demo as
 * subprocesses from dist/ and must test the code as it is now. Tests themselves are not emitted:
 * vitest runs their TypeScript directly. A type error in the product or the demo fails the run.
 * The second project to call it waits on the first one's build instead of emitting again.
 *
 * It also opens the project to `nobody` for the whole run (see letUnprivilegedReachProject): test
 * files run side by side, and one file undoing the chmod while another still runs as `nobody`
 * would break the other. The files' own calls then find nothing to change.
 */
export default async function build(): Promise<() => Promise<void>> {
  const shared = globalThis as { [BUILT]?: Promise<() => Promise<void>> };
  if (shared[BUILT]) {
    await shared[BUILT];
    return async () => undefined;
  }
  shared[BUILT] = emitAndOpen();
  return await shared[BUILT];
}

async function emitAndOpen(): Promise<() => Promise<void>> {
  try {
    await promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.demo.json', '--incremental', '--tsBuildInfoFile', BUILD_INFO], { maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const { stdout } = error as { stdout?: string };
    throw new Error(`tsc failed:\n${stdout ?? String(error)}`);
  }
  return letUnprivilegedReachProject();
}
