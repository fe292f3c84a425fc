import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The compiled CLI entry (built by the global set-up). */
export const CLI = fileURLToPath(new URL('../../bin/devproxy.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `devproxy <args>` as a real subprocess; never rejects on a non-zero exit. */
export function runCli(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: options.cwd, env: options.env, timeout: options.timeoutMs ?? 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
