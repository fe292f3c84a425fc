import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * vitest global set-up: compiles the project once, so that tests which run the real CLI and
 * daemon as subprocesses (dist/) test the code under test, and a type error fails the suite.
 */
export default async function build(): Promise<void> {
  try {
    await promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const { stdout } = error as { stdout?: string };
    throw new Error(`tsc failed:\n${stdout ?? String(error)}`);
  }
}
