/**
 * The request log's cost: the same HTTP/1.1 load through one daemon with recording on and off,
 * alternating within each round (so drift on the shared machine hits both alike), and the ring
 * buffer's memory once it is full. Recording is switched through the admin API, as the
 * dashboard's record button does.
 */
import type { RequestLogStats } from '../../proxy/request-log.js';
import { runLoad, type LoadRequest, type LoadTools } from './load.js';
import { treeCpuSeconds } from './proc-stats.js';
import type { RoundResult, Target } from './report.js';
import { median, ratio } from './stats.js';

/** What the phase measured. */
export interface RequestLogResult {
  on: RoundResult[];
  off: RoundResult[];
  /** Medians over rounds. */
  rpsOn: number;
  rpsOff: number;
  /** Median of per-round on/off req/s ratios. */
  ratio: number;
  cpuUsPerReqOn: number;
  cpuUsPerReqOff: number;
  /** The log's own figures after the loads (full: capacity entries). */
  stats: RequestLogStats;
}

/** The daemon's admin API, from daemon.json. */
export interface AdminAccess {
  port: number;
  token: string;
}

async function admin<T>(access: AdminAccess, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${access.port}${path}`, {
    method: body === undefined ? 'GET' : 'PUT',
    headers: { authorization: `Bearer ${access.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) throw new Error(`admin API ${path} answered ${response.status}`);
  return (await response.json()) as T;
}

/** Runs `rounds` × (on, off) loads of `durationS` each against the daemon `pid`; recording is left on. */
export async function measureRequestLog(tools: LoadTools, load: LoadRequest, access: AdminAccess, pid: number, rounds: number): Promise<RequestLogResult> {
  const on: RoundResult[] = [];
  const off: RoundResult[] = [];
  const ratios: number[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? [true, false] : [false, true];
      const got: Record<'on' | 'off', RoundResult | undefined> = { on: undefined, off: undefined };
      for (const recording of order) {
        await admin(access, '/api/requests/recording', { recording });
        const cpu0 = treeCpuSeconds(pid);
        const result = await runLoad(tools, load);
        const cpu = treeCpuSeconds(pid) - cpu0;
        const row: RoundResult = { ...result, cpuUsPerReq: result.requests > 0 ? (cpu * 1e6) / result.requests : Number.NaN };
        (recording ? on : off).push(row);
        got[recording ? 'on' : 'off'] = row;
      }
      ratios.push(ratio(got.on?.rps, got.off?.rps));
    }
  } finally {
    await admin(access, '/api/requests/recording', { recording: true }).catch(() => undefined);
  }
  const { stats } = await admin<{ stats: RequestLogStats }>(access, '/api/requests?limit=0');
  return {
    on,
    off,
    rpsOn: median(on.map((r) => r.rps)),
    rpsOff: median(off.map((r) => r.rps)),
    ratio: median(ratios),
    cpuUsPerReqOn: median(on.map((r) => r.cpuUsPerReq)),
    cpuUsPerReqOff: median(off.map((r) => r.cpuUsPerReq)),
    stats,
  };
}

/** The goal: the log costs nothing measurable, req/s with it on ≥ 0.95× off. */
export function requestLogTarget(result: RequestLogResult | undefined): Target {
  const achieved = result === undefined || !Number.isFinite(result.ratio) ? 'n/a' : `${result.ratio.toFixed(2)}×`;
  return { name: 'HTTP req/s, request log on vs off', goal: '≥ 0.95×', achieved, ...(result && Number.isFinite(result.ratio) ? { pass: result.ratio >= 0.95 } : {}) };
}

/** The report's lines for the phase. */
export function renderRequestLog(result: RequestLogResult | undefined): string[] {
  if (result === undefined) return ['7. Request log: n/a'];
  const kib = (n: number): string => `${(n / 1024).toFixed(0)} KiB`;
  const s = result.stats;
  return [
    `7. Request log, HTTP/1.1 load with recording on vs off (${result.on.length} rounds, alternating): on ${result.rpsOn.toFixed(0)} req/s (${result.cpuUsPerReqOn.toFixed(1)} µs CPU/req), off ${result.rpsOff.toFixed(0)} req/s (${result.cpuUsPerReqOff.toFixed(1)} µs CPU/req): ${result.ratio.toFixed(2)}× (median of per-round ratios)`,
    `   ring buffer: ${s.size} of ${s.capacity} entries after ${s.recorded} requests, about ${kib(s.approxBytes)} held (bounded at ${kib(s.maxBytes)} whatever the headers)`,
  ];
}
