/** The benchmark's results model, its targets, and the one table printed on stdout. */
import type { LoadResult } from './load.js';
import type { FlipResult, UseFlipResult } from './flip.js';
import type { UploadResult } from './upload.js';
import type { RouteBuildResult } from './route-build.js';
import type { WsResult } from './ws-echo.js';
import type { ProfileSummary } from './cpu-profile.js';
import type { RemoteTlsResult } from './remote-tls.js';
import { median, ratio } from './stats.js';
import { mib } from './proc-stats.js';
import { renderRequestLog, type RequestLogResult } from './request-log.js';

/** One load of a throughput round, with the serving process's CPU time per request. */
export type RoundResult = LoadResult & { cpuUsPerReq: number };

/** One row of the throughput table: a target measured over several rounds. */
export interface ThroughputRow {
  key: 'direct' | 'devproxy-http' | 'devproxy-h2' | 'caddy' | 'caddy-h2' | 'nginx' | 'portless';
  label: string;
  /** Why the row has no figures (peer missing, listener absent, failure). */
  skipped?: string;
  rounds: RoundResult[];
  /** Round number of each entry of `rounds` (a failed load leaves a gap). */
  roundOf: number[];
  /** Medians over rounds. */
  rps: number;
  p50Us: number;
  p99Us: number;
  /** CPU time (user + system) of the serving process and its children per request, µs. */
  cpuUsPerReq: number;
  /** Requests that failed or were not 2xx, summed over rounds. */
  bad: number;
  tool?: string;
}

/** Latency at one connection, direct and through devproxy, µs. */
export interface Latency1 {
  direct: { p50Us: number; p99Us: number };
  devproxy: { p50Us: number; p99Us: number };
  addedP50Us: number;
  addedP99Us: number;
  tool: string;
}

/** Everything one run measured. */
export interface BenchResults {
  date: string;
  node: string;
  machine: { nproc: number; cpuModel: string; memTotalMiB: number; kernel: string };
  tools: Record<string, string>;
  config: { durationS: number; rounds: number; connections: number; threads: number; latencyDurationS: number; profile: boolean; quick: boolean };
  /** 1-minute load average at the start and the end: how busy the shared machine was. */
  loadAverage: { start: number; end: number };
  upstream: string;
  notes: string[];
  errors: string[];
  throughput: ThroughputRow[];
  latency1?: Latency1 & { closedLoop: Latency1 };
  flips?: FlipResult;
  useFlips?: UseFlipResult;
  /** Daemon RSS figures, and the peers' idle RSS (process tree, after one served request) beside them. */
  memory: {
    idle1Bytes?: number;
    afterLoadBytes?: number;
    idleScaleBytes?: number;
    upload?: UploadResult;
    caddyIdleBytes?: number;
    portlessIdleBytes?: number;
    /** The same readings once each process sat idle for SETTLED_IDLE_S (see bench/run.ts). */
    settled?: { idle1Bytes?: number; idleScaleBytes?: number; caddyIdleBytes?: number; portlessIdleBytes?: number };
  };
  scale: { worktrees: number; services: number; routesServed?: number; setupS?: number; idleCpuPct?: number; idleCpuWindowS?: number; routeBuild?: RouteBuildResult };
  websocket?: { direct: number; devproxy: number; ratio: number; rounds: { direct: WsResult[]; devproxy: WsResult[] } };
  profile?: ProfileSummary;
  requestLog?: RequestLogResult;
  remoteTls?: RemoteTlsResult;
  targets: Target[];
  totalS: number;
}

/** One of the issue's targets and what this run achieved. */
export interface Target {
  name: string;
  goal: string;
  achieved: string;
  /** undefined when the run could not measure it. */
  pass?: boolean;
}

/** Median figures of a row from its rounds. */
export function finishRow(row: ThroughputRow): ThroughputRow {
  if (row.rounds.length === 0) return row;
  row.rps = median(row.rounds.map((r) => r.rps));
  row.p50Us = median(row.rounds.map((r) => r.p50Us));
  row.p99Us = median(row.rounds.map((r) => r.p99Us));
  row.cpuUsPerReq = median(row.rounds.map((r) => r.cpuUsPerReq));
  row.bad = row.rounds.reduce((a, r) => a + r.errors + r.non2xx, 0);
  row.tool = row.rounds[0]?.tool;
  return row;
}

/**
 * req/s of `a` over `b`: the median of per-round ratios, since loads of one round run minutes
 * apart from the next and the shared machine's load drifts in between; NaN when either is absent.
 */
export function roundRatio(a: ThroughputRow | undefined, b: ThroughputRow | undefined): number {
  if (!a || !b || a.skipped || b.skipped) return Number.NaN;
  const ratios: number[] = [];
  a.roundOf.forEach((round, i) => {
    const j = b.roundOf.indexOf(round);
    if (j >= 0) ratios.push(ratio(a.rounds[i]?.rps, b.rounds[j]?.rps));
  });
  return median(ratios);
}

function row(results: BenchResults, key: ThroughputRow['key']): ThroughputRow | undefined {
  return results.throughput.find((r) => r.key === key);
}

const fmt = (n: number | undefined, digits = 0): string => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits));
const us = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? 'n/a' : n >= 10_000 ? `${(n / 1000).toFixed(1)} ms` : `${Math.round(n)} µs`);
const signed = (n: number): string => (Number.isFinite(n) && n >= 0 ? `+${us(n)}` : us(n));
const ms = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? 'n/a' : `${n.toFixed(1)} ms`);
const x = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)}×` : 'n/a');

/** How long each process sits idle before its settled RSS is read (V8's memory reducer runs ~8 s after the last activity). */
export const SETTLED_IDLE_S = 30;

function mibOrNa(bytes: number | undefined): string {
  return bytes === undefined ? 'n/a' : `${mib(bytes)} MiB`;
}

/** `Caddy 34.1 MiB, portless 52.0 MiB idle` from the same run (their settled readings with `settled`); undefined when neither ran. */
function peerIdleRss(results: BenchResults, settled = false): string | undefined {
  const { caddyIdleBytes, portlessIdleBytes } = settled ? (results.memory.settled ?? {}) : results.memory;
  const parts = [
    ...(caddyIdleBytes !== undefined ? [`Caddy ${mib(caddyIdleBytes)} MiB`] : []),
    ...(portlessIdleBytes !== undefined ? [`portless ${mib(portlessIdleBytes)} MiB`] : []),
  ];
  return parts.length > 0 ? `${parts.join(', ')} idle` : undefined;
}

/** The issue's goals against Caddy over the same protocol: req/s at least, CPU per request at most. */
const CADDY_RPS_GOAL = 1.3;
const CADDY_CPU_GOAL = 0.6;

/** Judges the run against the issue's targets. */
export function judgeTargets(results: BenchResults): Target[] {
  const dev = row(results, 'devproxy-http');
  const targets: Target[] = [];
  // CPU per request is the same goal in what a request costs, whatever else the machine runs.
  const cpu = (key: ThroughputRow['key']): number | undefined => row(results, key)?.cpuUsPerReq;
  for (const [mine, caddy, name] of [
    ['devproxy-http', 'caddy', 'HTTP/1.1'],
    ['devproxy-h2', 'caddy-h2', 'HTTPS h2'],
  ] as const) {
    const rps = roundRatio(row(results, mine), row(results, caddy));
    targets.push({ name: `${name} req/s vs Caddy ${name}`, goal: `≥ ${CADDY_RPS_GOAL}×`, achieved: x(rps), ...(Number.isFinite(rps) ? { pass: rps >= CADDY_RPS_GOAL } : {}) });
    const cost = ratio(cpu(mine), cpu(caddy));
    targets.push({ name: `${name} CPU/request vs Caddy ${name}`, goal: `≤ ${CADDY_CPU_GOAL}×`, achieved: x(cost), ...(Number.isFinite(cost) ? { pass: cost <= CADDY_CPU_GOAL } : {}) });
  }
  const vsPortless = roundRatio(dev, row(results, 'portless'));
  targets.push({ name: 'HTTP req/s vs portless', goal: '≥ 4×', achieved: x(vsPortless), ...(Number.isFinite(vsPortless) ? { pass: vsPortless >= 4 } : {}) });
  const cpuVsPortless = ratio(cpu('devproxy-http'), cpu('portless'));
  targets.push({ name: 'HTTP CPU/request vs portless (same goal in CPU)', goal: '≤ 0.25×', achieved: x(cpuVsPortless), ...(Number.isFinite(cpuVsPortless) ? { pass: cpuVsPortless <= 0.25 } : {}) });
  const added = results.latency1?.addedP99Us;
  targets.push({ name: 'p99 added latency, 1 connection', goal: '< 1 ms', achieved: us(added), ...(added !== undefined && Number.isFinite(added) ? { pass: added < 1000 } : {}) });
  const flip = results.flips?.all.p99;
  const flipOk = flip !== undefined && Number.isFinite(flip) && results.flips?.missed === 0;
  targets.push({ name: 'flip p99 (file write → new target)', goal: '≤ 25 ms', achieved: ms(flip), ...(flip !== undefined && Number.isFinite(flip) ? { pass: flipOk && flip <= 25 } : {}) });
  const memory = results.memory;
  const peersSettled = peerIdleRss(results, true);
  // Judged once settled: V8 shrinks the young generation only in the memory-reducing GC it runs
  // some seconds after the last activity, so the reading 3 s after start-up is not what an idle
  // daemon holds. Both are shown.
  const idleTarget = (name: string, afterStart: number | undefined, settled: number | undefined, goalMiB: number): Target => ({
    name,
    goal: `≤ ${goalMiB} MiB`,
    achieved:
      settled === undefined
        ? 'n/a'
        : `${mib(settled)} MiB settled (${afterStart === undefined ? 'n/a' : mib(afterStart)} MiB 3 s after start-up)${peersSettled ? ` (${peersSettled})` : ''}`,
    ...(settled !== undefined ? { pass: settled <= goalMiB * 1024 * 1024 } : {}),
  });
  targets.push(idleTarget('RSS idle, 1 worktree', memory.idle1Bytes, memory.settled?.idle1Bytes, 60));
  targets.push(idleTarget(`RSS idle, ${results.scale.worktrees} worktrees × ${results.scale.services} services`, memory.idleScaleBytes, memory.settled?.idleScaleBytes, 75));
  const up = memory.upload;
  const delta = up ? up.rssPeakBytes - up.rssBeforeBytes : undefined;
  targets.push({
    name: `RSS growth during ${up ? mib(up.bytes) / 1024 : 1} GiB upload`,
    goal: '≤ +30 MiB',
    achieved: delta === undefined ? 'n/a' : `+${mib(delta)} MiB`,
    ...(delta !== undefined && up ? { pass: delta <= 30 * 1024 * 1024 && up.received === up.bytes } : {}),
  });
  const tls = results.remoteTls;
  targets.push({
    name: 'HTTPS remote: GET after HEAD vs after GET (p50)',
    goal: '≤ 1.5×',
    achieved: tls === undefined ? 'n/a' : x(tls.headRatio),
    ...(tls !== undefined && Number.isFinite(tls.headRatio) ? { pass: tls.headRatio <= 1.5 } : {}),
  });
  targets.push({
    name: 'other route p50 while a client loops HEAD+GET on an HTTPS remote vs idle',
    goal: '≤ 1.5×',
    achieved: tls === undefined ? 'n/a' : x(tls.neighbourRatio),
    ...(tls !== undefined && Number.isFinite(tls.neighbourRatio) ? { pass: tls.neighbourRatio <= 1.5 } : {}),
  });
  return targets;
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

/** The human table: throughput with ratios, then the other measures and the targets. */
export function renderTable(r: BenchResults): string {
  const out: string[] = [];
  out.push(`devproxy bench — ${r.date} — node ${r.node} — ${r.machine.nproc} × ${r.machine.cpuModel}, ${Math.round(r.machine.memTotalMiB / 1024)} GiB`);
  out.push(`tools: ${Object.entries(r.tools).map(([k, v]) => `${k} ${v}`).join(', ')}; upstream: ${r.upstream}`);
  out.push('');
  out.push(`machine load average (1 min): ${r.loadAverage.start.toFixed(2)} at start, ${r.loadAverage.end.toFixed(2)} at end`);
  out.push('');
  out.push(
    `1. Throughput, small GET, keep-alive, ${r.config.connections} connections, ${r.config.threads} threads, ${r.config.durationS} s × ${r.config.rounds} rounds interleaved (median; ratios are medians of per-round ratios)`,
  );
  out.push('   CPU/req: user + system CPU time of the serving process (and its children) per request; the machine being busy changes it least.');
  out.push('   × Caddy and CPU × Caddy: against Caddy over the same protocol (HTTPS h2 rows against Caddy HTTPS h2, the others against Caddy HTTP/1.1).');
  const caddy = row(r, 'caddy');
  const caddyH2 = row(r, 'caddy-h2');
  const caddyOf = (t: ThroughputRow): ThroughputRow | undefined => (t.key === 'devproxy-h2' || t.key === 'caddy-h2' ? caddyH2 : caddy);
  const direct = row(r, 'direct');
  const portless = row(r, 'portless');
  out.push(
    ...table(
      ['target', 'req/s', 'p50', 'p99', '× Caddy', '× direct', '× portless', 'CPU/req', 'CPU × Caddy', 'bad', 'load'],
      r.throughput.map((t) =>
        t.skipped
          ? [t.label, 'n/a', '', '', '', '', '', '', '', '', t.skipped]
          : [
              t.label,
              fmt(t.rps),
              us(t.p50Us),
              us(t.p99Us),
              x(roundRatio(t, caddyOf(t))),
              x(roundRatio(t, direct)),
              x(roundRatio(t, portless)),
              Number.isFinite(t.cpuUsPerReq) ? `${t.cpuUsPerReq.toFixed(1)} µs` : 'n/a',
              x(ratio(t.cpuUsPerReq, caddyOf(t)?.cpuUsPerReq)),
              String(t.bad),
              t.tool ?? '',
            ],
      ),
    ),
  );
  out.push('');
  if (r.latency1) {
    const line = (l: Latency1): string =>
      `direct p50 ${us(l.direct.p50Us)} p99 ${us(l.direct.p99Us)}; devproxy p50 ${us(l.devproxy.p50Us)} p99 ${us(l.devproxy.p99Us)}; added p50 ${signed(l.addedP50Us)}, p99 ${signed(l.addedP99Us)}`;
    out.push(`2. Added latency, 1 connection, one request at a time (${r.latency1.tool}, median of ${r.config.rounds}): ${line(r.latency1)}`);
  } else out.push('2. Added latency: n/a');
  if (r.flips) {
    const f = r.flips;
    out.push(`3. Flip, atomic write of profile.yaml → first response from the new target (${f.flips} flips, ${f.missed} missed): p50 ${ms(f.all.p50)}, p99 ${ms(f.all.p99)}, max ${ms(f.all.max)} (to remote p99 ${ms(f.toRemote.p99)}, to local p99 ${ms(f.toLocal.p99)})`);
  } else out.push('3. Flip: n/a');
  if (r.useFlips) {
    const u = r.useFlips;
    out.push(`   Flip through \`devproxy use\` (${u.flips} flips, ${u.missed} missed): spawn → new target p50 ${ms(u.fromSpawn.p50)}, p99 ${ms(u.fromSpawn.p99)}; CLI exit → new target p50 ${ms(u.fromExit.p50)}, p99 ${ms(u.fromExit.p99)}; CLI run p50 ${ms(u.cliRun.p50)}`);
    if (u.failures.length > 0) out.push(`   use failures: ${u.failures.join('; ')}`);
  }
  const m = r.memory;
  const up = m.upload;
  const peersIdle = peerIdleRss(r);
  const peersSettledLine = peerIdleRss(r, true);
  out.push(
    `4. Daemon RSS, 3 s after start-up: 1 worktree ${m.idle1Bytes === undefined ? 'n/a' : `${mib(m.idle1Bytes)} MiB`}; after the loads ${m.afterLoadBytes === undefined ? 'n/a' : `${mib(m.afterLoadBytes)} MiB`}; ${r.scale.worktrees} worktrees × ${r.scale.services} services ${m.idleScaleBytes === undefined ? 'n/a' : `${mib(m.idleScaleBytes)} MiB`}${peersIdle ? `; same run: ${peersIdle}` : ''}`,
    `   settled (${SETTLED_IDLE_S} s idle): 1 worktree ${mibOrNa(m.settled?.idle1Bytes)}; ${r.scale.worktrees} worktrees × ${r.scale.services} services ${mibOrNa(m.settled?.idleScaleBytes)}${peersSettledLine ? `; same run: ${peersSettledLine}` : ''}`,
  );
  if (up) {
    out.push(`   ${mib(up.bytes) / 1024} GiB streamed upload at ${fmt(up.mibPerS)} MiB/s (${up.received === up.bytes ? 'all bytes arrived' : `sink got ${up.received} bytes`}): RSS before ${mib(up.rssBeforeBytes)} MiB, peak ${mib(up.rssPeakBytes)} MiB (+${mib(up.rssPeakBytes - up.rssBeforeBytes)}), after ${mib(up.rssAfterBytes)} MiB`);
  } else out.push('   upload: n/a');
  const s = r.scale;
  const rb = s.routeBuild;
  out.push(
    `5. Scale: buildRoutingTable for ${rb ? `${rb.worktrees} worktrees (${rb.routes} routes) p50 ${ms(rb.ms.p50)}, p99 ${ms(rb.ms.p99)} over ${rb.iterations} builds; after one worktree's flip, updateRoutingTable p50 ${ms(rb.flipMs.p50)}, p99 ${ms(rb.flipMs.p99)}` : 'n/a'}; daemon idle CPU with ${s.worktrees} worktrees watched ${s.idleCpuPct === undefined ? 'n/a' : `${s.idleCpuPct.toFixed(2)} % of one core over ${s.idleCpuWindowS} s`}`,
  );
  if (r.websocket) {
    out.push(`6. WebSocket echo, 1 connection, 64 in flight: direct ${fmt(r.websocket.direct)} msg/s, devproxy ${fmt(r.websocket.devproxy)} msg/s (${x(r.websocket.ratio)} direct)`);
  } else out.push('6. WebSocket: n/a');
  out.push(...renderRequestLog(r.requestLog));
  const tls = r.remoteTls;
  if (tls) {
    out.push(
      `8. HTTPS remote (${tls.pairs} pairs each): GET after GET p50 ${us(tls.getAfterGet.p50Us)} p99 ${us(tls.getAfterGet.p99Us)}; GET after HEAD p50 ${us(tls.getAfterHead.p50Us)} p99 ${us(tls.getAfterHead.p99Us)} (${x(tls.headRatio)}); new TLS connections to the remote meanwhile: ${tls.remoteConnections}`,
    );
    out.push(
      `   other route, ${tls.neighbourRequests} GETs: idle p50 ${us(tls.neighbourIdle.p50Us)} p99 ${us(tls.neighbourIdle.p99Us)}; while a client loops HEAD+GET on the remote (${tls.loopRequests} requests) p50 ${us(tls.neighbourBusy.p50Us)} p99 ${us(tls.neighbourBusy.p99Us)} (${x(tls.neighbourRatio)})`,
    );
  } else out.push('8. HTTPS remote: n/a');
  out.push('');
  out.push('Targets');
  out.push(...table(['target', 'goal', 'achieved', 'result'], r.targets.map((t) => [t.name, t.goal, t.achieved, t.pass === undefined ? 'not measured' : t.pass ? 'met' : 'MISSED'])));
  if (r.profile) {
    out.push('');
    out.push(`Daemon CPU profile (${r.profile.file}): idle ${r.profile.idlePct} % of samples, GC ${r.profile.gcPct} % of busy`);
    out.push(...table(['self time by function', '% busy'], r.profile.topFunctions.map((f) => [f.name, f.selfPct.toFixed(1)])));
    out.push(...table(['self time by source', '% busy'], r.profile.bySource.map((f) => [f.name, f.selfPct.toFixed(1)])));
    out.push(...table(["devproxy's functions, inclusive time", '% busy'], r.profile.devproxyInclusive.map((f) => [f.name, f.selfPct.toFixed(1)])));
  }
  if (r.notes.length > 0) out.push('', 'Notes', ...r.notes.map((n) => `- ${n}`));
  if (r.errors.length > 0) out.push('', 'Errors', ...r.errors.map((e) => `- ${e}`));
  out.push('', `total ${r.totalS.toFixed(0)} s`);
  return out.join('\n');
}
