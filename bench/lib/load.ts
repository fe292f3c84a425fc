/**
 * Runs one bounded load against 127.0.0.1 with the best tool at hand: wrk for HTTP/1.1, h2load
 * for HTTP/2 (its per-request log gives the percentiles), else the Node fallback in
 * `bench/node-load.ts`. Every load stops by itself after its duration.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadResult, LoadSpec } from '../node-load.js';
import { summarise } from './stats.js';
import { runCommand } from './procs.js';

export type { LoadResult } from '../node-load.js';

/** Load generators found on this machine. */
export interface LoadTools {
  /** Path of wrk, when installed. */
  wrk?: string;
  /** Path of h2load (Debian nghttp2-client), when installed. */
  h2load?: string;
  /** `dist/bench/node-load.js`, always there. */
  nodeLoad: string;
}

/** One load to run. */
export interface LoadRequest {
  /** 127.0.0.1 port. */
  port: number;
  /** Host header / :authority, e.g. `api.bench.localhost:8080`; omitted sends the URL's. */
  host?: string;
  /** TLS + HTTP/2 (SNI taken from `host`). */
  h2?: boolean;
  connections: number;
  threads: number;
  durationS: number;
  /** Where h2load may write its per-request log. */
  scratchDir: string;
}

/** Slack added to a load's own duration before the harness kills the tool. */
const LOAD_TIMEOUT_SLACK_MS = 20_000;

/** wrk prints latencies as `123.45us`, `1.23ms` or `1.00s`. */
export function parseWrkDuration(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) return Number.NaN;
  const value = Number(match[1]);
  const unitUs = { us: 1, ms: 1000, s: 1_000_000, m: 60_000_000 }[match[2] as 'us' | 'ms' | 's' | 'm'];
  return value * unitUs;
}

/** Extracts req/s, p50 and p99 (µs) and error counts from `wrk --latency` output. */
export function parseWrk(output: string): LoadResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? Number.NaN);
  const p50 = /^\s+50%\s+(\S+)/m.exec(output)?.[1];
  const p99 = /^\s+99%\s+(\S+)/m.exec(output)?.[1];
  const total = /(\d+) requests in ([\d.]+)(\w+)/.exec(output);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const errors = socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const seconds = total ? parseWrkDuration(`${total[2]}${total[3]}`) / 1_000_000 : Number.NaN;
  return {
    tool: 'wrk',
    requests: total ? Number(total[1]) : 0,
    errors,
    non2xx,
    seconds,
    rps,
    p50Us: p50 ? parseWrkDuration(p50) : Number.NaN,
    p99Us: p99 ? parseWrkDuration(p99) : Number.NaN,
  };
}

/** Reads h2load's summary and its `--log-file` (`start_us \t status \t duration_us` per request). */
export function parseH2load(output: string, log: string): LoadResult {
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(output)?.[1] ?? Number.NaN);
  const seconds = Number(/finished in ([\d.]+)s/.exec(output)?.[1] ?? Number.NaN);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(output);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(output);
  const durations: number[] = [];
  for (const line of log.split('\n')) {
    const fields = line.split('\t');
    if (fields.length >= 3) durations.push(Number(fields[2]));
  }
  const summary = summarise(durations);
  return {
    tool: 'h2load',
    requests: req ? Number(req[3]) : 0,
    errors: req ? Number(req[5]) + Number(req[6]) + Number(req[7]) : 0,
    non2xx: codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0,
    seconds,
    rps,
    p50Us: summary.p50,
    p99Us: summary.p99,
  };
}

/** Runs one load and returns its figures; throws only when the tool could not run at all. */
export async function runLoad(tools: LoadTools, load: LoadRequest): Promise<LoadResult> {
  const timeoutMs = load.durationS * 1000 + LOAD_TIMEOUT_SLACK_MS;
  if (load.h2 && tools.h2load) {
    const host = load.host ?? `127.0.0.1:${load.port}`;
    const logFile = join(load.scratchDir, `h2load-${process.hrtime.bigint()}.log`);
    // --connect-to keeps SNI and :authority on the *.localhost name while dialling loopback.
    const args = [
      `-c${load.connections}`,
      `-t${load.threads}`,
      '-m1',
      `--duration=${load.durationS}`,
      '--warm-up-time=1',
      `--log-file=${logFile}`,
      `--connect-to=127.0.0.1:${load.port}`,
      `https://${host}/`,
    ];
    const result = await runCommand(tools.h2load, args, { timeoutMs });
    if (result.code !== 0) throw new Error(`h2load failed (${result.code}): ${result.stderr || result.stdout}`);
    let log = '';
    try {
      log = readFileSync(logFile, 'utf8');
    } finally {
      rmSync(logFile, { force: true });
    }
    return parseH2load(result.stdout, log);
  }
  if (!load.h2 && tools.wrk) {
    const args = [`-t${load.threads}`, `-c${load.connections}`, `-d${load.durationS}s`, '--latency'];
    if (load.host) args.push('-H', `Host: ${load.host}`);
    args.push(`http://127.0.0.1:${load.port}/`);
    const result = await runCommand(tools.wrk, args, { timeoutMs });
    if (result.code !== 0) throw new Error(`wrk failed (${result.code}): ${result.stderr || result.stdout}`);
    return parseWrk(result.stdout);
  }
  const spec: LoadSpec = {
    url: `${load.h2 ? 'https' : 'http'}://127.0.0.1:${load.port}/`,
    connections: load.connections,
    durationMs: load.durationS * 1000,
    maxRequests: 5_000_000,
    h2: load.h2 === true,
  };
  if (load.host) {
    spec.host = load.host;
    spec.servername = load.host.replace(/:\d+$/, '');
  }
  const result = await runCommand(process.execPath, [tools.nodeLoad, JSON.stringify(spec)], { timeoutMs });
  if (result.code !== 0) throw new Error(`node load failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as LoadResult;
}
