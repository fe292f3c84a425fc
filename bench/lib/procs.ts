/**
 * Every process and resource the benchmark starts is registered here, so that one call stops
 * them all, also on error and on SIGINT/SIGTERM.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createServer, connect } from 'node:net';

/** Grace between SIGTERM and SIGKILL when stopping a child. */
const STOP_GRACE_MS = 5000;

/** A long-running child the benchmark owns. */
export interface Managed {
  name: string;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the child is gone. */
  exited: Promise<number | string>;
  /** SIGTERM (or `signal`), then SIGKILL after a grace period; idempotent. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

type Cleanup = () => Promise<void> | void;

const cleanups: Cleanup[] = [];
let shuttingDown = false;

/** True once `cleanupAll` has begun: nothing new may start. */
export function isShuttingDown(): boolean {
  return shuttingDown;
}

/** Registers work to do at the end (LIFO), e.g. stopping a daemon through its own CLI. */
export function onCleanup(fn: Cleanup): void {
  cleanups.push(fn);
}

/** Starts `cmd` with its stdout/stderr appended to `logFile`; it is stopped by `cleanupAll`. */
export function startProcess(name: string, cmd: string, args: string[], opts: SpawnOptions & { logFile: string }): Managed {
  if (shuttingDown) throw new Error(`not starting ${name}: shutting down`);
  const { logFile, ...spawnOpts } = opts;
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(cmd, args, { ...spawnOpts, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<number | string>((resolve) => {
    child.once('error', (err) => resolve(`spawn error: ${err.message}`));
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  let stopping: Promise<void> | undefined;
  const managed: Managed = {
    name,
    child,
    exited,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
          child.kill(signal);
          const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
          await exited;
          clearTimeout(timer);
        }
        log.end();
      })();
      return stopping;
    },
  };
  onCleanup(() => managed.stop());
  return managed;
}

/** Result of a short command. */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, ms. */
  ms: number;
}

/** Runs a short command to completion, killed after `timeoutMs`; never throws on exit code. */
export function runCommand(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { timeoutMs?: number; input?: string } = {},
): Promise<CommandResult> {
  const { timeoutMs = 60_000, input, ...spawnOpts } = opts;
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(cmd, args, { ...spawnOpts, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: stderr + err.message, ms: performance.now() - started });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - started });
    });
    if (input !== undefined && child.stdin) {
      // A child that exits without reading its input must not crash the harness with EPIPE.
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    }
  });
}

/**
 * Runs every registered cleanup once, newest first; errors are collected, not thrown. A cleanup
 * registered meanwhile (by a phase still finishing after Ctrl-C) runs too.
 */
export async function cleanupAll(): Promise<string[]> {
  shuttingDown = true;
  const errors: string[] = [];
  while (cleanups.length > 0) {
    const fn = cleanups.pop() as Cleanup;
    try {
      await fn();
    } catch (err) {
      errors.push(err instanceof Error ? err.message : String(err));
    }
  }
  return errors;
}

/** A port that was free on 127.0.0.1 a moment ago (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once 127.0.0.1:port accepts TCP connections; rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 10_000, what = `port ${port}`): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not open within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Like `waitForPort`, but fails at once (pointing at its log) when the process exits first. */
export async function waitForListening(managed: Managed, port: number, what: string, timeoutMs = 15_000): Promise<void> {
  const exited = managed.exited.then((code) => {
    throw new Error(`${what}: ${managed.name} exited (${code}) before listening; see its log`);
  });
  // The exit usually comes long after listening, at clean-up: that rejection is expected.
  exited.catch(() => undefined);
  await Promise.race([waitForPort(port, timeoutMs, what), exited]);
}

/** Promise-based delay. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
