import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * vitest global set-up of the `integration` project: compiles the product and the demo into
 * dist/ (`tsconfig.demo.json`), because those tests run the real CLI, daemon, preload and demo as
 * subprocesses from dist/ and must test the code as it is now. Tests themselves are not emitted:
 * vitest runs their TypeScript directly. A type error in the product or the demo fails the run.
 */
export default async function build(): Promise<void> {
  try {
    await promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.demo.json'], { maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const { stdout } = error as { stdout?: string };
    throw new Error(`tsc failed:\n${stdout ?? String(error)}`);
  }
}
