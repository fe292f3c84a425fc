/**
 * Flip latency: from switching a worktree's profile (atomic file write, or `devproxy use`) to the
 * first response served by the new target, found by polling the proxy back to back on one
 * keep-alive connection.
 */
import { spawn } from 'node:child_process';
import { httpGet, pollingAgent } from './http-get.js';
import { sleep } from './procs.js';
import { summarise, type Summary } from './stats.js';
import { PROFILE_LOCAL, PROFILE_REMOTE, writeProfileAtomically } from './fixtures.js';
import { cliPath, type Cli } from './devproxy.js';

/** Give up on one flip after this long; it counts as missed. */
const FLIP_TIMEOUT_MS = 5000;
/** Quiet time between flips, so one flip's watcher events do not merge with the next. */
const FLIP_GAP_MS = 40;

/** Bodies of the two flip targets. */
const BODY: Record<string, string> = { [PROFILE_LOCAL]: 'A', [PROFILE_REMOTE]: 'B' };

/** Flip latencies in ms. */
export interface FlipResult {
  flips: number;
  missed: number;
  all: Summary;
  toRemote: Summary;
  toLocal: Summary;
}

/** `devproxy use` flips: from spawning the CLI, and from its exit, to the first new response. */
export interface UseFlipResult {
  flips: number;
  missed: number;
  fromSpawn: Summary;
  /** 0 when the new target already answered before the CLI exited. */
  fromExit: Summary;
  /** How long the CLI process itself ran. */
  cliRun: Summary;
  failures: string[];
}

interface Poller {
  /** Resolves with ms since `t0` at which `expected` was first served, or undefined on timeout. */
  until(expected: string, t0: number): Promise<number | undefined>;
  /** The last answer seen, for error messages. */
  last(): string;
  close(): void;
}

function poller(port: number, host: string): Poller {
  const agent = pollingAgent();
  let last = 'nothing yet';
  return {
    async until(expected, t0) {
      for (;;) {
        const probe = await httpGet(port, host, agent, FLIP_TIMEOUT_MS);
        last = `${probe.status} route=${probe.route ?? '-'} body=${probe.body.slice(0, 80)}`;
        const now = performance.now();
        if (probe.body === expected) return now - t0;
        if (now - t0 > FLIP_TIMEOUT_MS) return undefined;
      }
    },
    last: () => last,
    close: () => agent.destroy(),
  };
}

async function settle(p: Poller, profile: string): Promise<void> {
  const got = await p.until(BODY[profile] as string, performance.now());
  if (got === undefined) throw new Error(`flip target did not settle on ${profile} within ${FLIP_TIMEOUT_MS} ms (last answer: ${p.last()})`);
}

/** `count` flips by atomic write of `<worktree>/.devproxy/profile.yaml`, alternating direction. */
export async function measureFileFlips(port: number, host: string, worktree: string, count: number): Promise<FlipResult> {
  const p = poller(port, host);
  try {
    writeProfileAtomically(worktree, PROFILE_LOCAL);
    await settle(p, PROFILE_LOCAL);
    const toRemote: number[] = [];
    const toLocal: number[] = [];
    let missed = 0;
    for (let i = 0; i < count; i++) {
      const target = i % 2 === 0 ? PROFILE_REMOTE : PROFILE_LOCAL;
      await sleep(FLIP_GAP_MS);
      const t0 = performance.now();
      writeProfileAtomically(worktree, target);
      const ms = await p.until(BODY[target] as string, t0);
      if (ms === undefined) {
        missed++;
        await settle(p, target);
      } else {
        (target === PROFILE_REMOTE ? toRemote : toLocal).push(ms);
      }
    }
    return { flips: count, missed, all: summarise([...toRemote, ...toLocal]), toRemote: summarise(toRemote), toLocal: summarise(toLocal) };
  } finally {
    p.close();
  }
}

/** `count` flips through `devproxy use <profile> -C <worktree>`, alternating direction. */
export async function measureUseFlips(cli: Cli, home: string, port: number, host: string, worktree: string, count: number): Promise<UseFlipResult> {
  const p = poller(port, host);
  const fromSpawn: number[] = [];
  const fromExit: number[] = [];
  const cliRun: number[] = [];
  const failures: string[] = [];
  let missed = 0;
  try {
    writeProfileAtomically(worktree, PROFILE_LOCAL);
    await settle(p, PROFILE_LOCAL);
    for (let i = 0; i < count; i++) {
      const target = i % 2 === 0 ? PROFILE_REMOTE : PROFILE_LOCAL;
      await sleep(FLIP_GAP_MS);
      const t0 = performance.now();
      const child = spawn(process.execPath, [cliPath(cli), 'use', target, '-C', worktree], {
        env: { ...process.env, DEVPROXY_HOME: home },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const exited = new Promise<{ code: number | null; at: number }>((resolve) => {
        child.once('error', () => resolve({ code: null, at: performance.now() }));
        child.once('exit', (code) => resolve({ code, at: performance.now() }));
      });
      const killer = setTimeout(() => child.kill('SIGKILL'), FLIP_TIMEOUT_MS * 2);
      const [served, exit] = await Promise.all([p.until(BODY[target] as string, t0), exited]);
      clearTimeout(killer);
      if (exit.code !== 0) failures.push(`use ${target}: exit ${exit.code} ${stderr.trim().split('\n')[0] ?? ''}`);
      cliRun.push(exit.at - t0);
      if (served === undefined) {
        missed++;
        writeProfileAtomically(worktree, target);
        await settle(p, target);
        continue;
      }
      fromSpawn.push(served);
      fromExit.push(Math.max(0, served - (exit.at - t0)));
    }
    return { flips: count, missed, fromSpawn: summarise(fromSpawn), fromExit: summarise(fromExit), cliRun: summarise(cliRun), failures: failures.slice(0, 5) };
  } finally {
    p.close();
  }
}
