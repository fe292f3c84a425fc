/**
 * `npm run bench`: devproxy side by side with the upstream direct, Caddy, nginx and portless, plus
 * the cost of a flip, memory, scale and WebSocket figures. Starts everything on 127.0.0.1, runs
 * bounded loads, stops all it started (also on error and Ctrl-C), prints one table and writes
 * `bench/results/<date>.json` and `latest.json`.
 *
 * Options: `--with-peers` installs missing peers (apt-get: caddy, nginx-light, wrk,
 * nghttp2-client; npm: portless@0.15.6); `--profile` runs the daemon under `--cpu-prof` and
 * prints its hot functions; `--quick` shortens every phase (for trying the harness);
 * `--duration N` / `--rounds N` set the throughput loads; `--keep` keeps the scratch folder.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliBuilt, runCli, startDaemonPreferHttps, waitForRoute, type Cli, type Daemon } from './lib/devproxy.js';
import { createBenchRepo, createScaleRepo, SCALE_SERVICES } from './lib/fixtures.js';
import { measureFileFlips, measureUseFlips } from './lib/flip.js';
import { runLoad, type LoadRequest, type LoadResult, type LoadTools } from './lib/load.js';
import type { ProbeResult, ProbeSpec } from './latency-probe.js';
import { findPeers, startCaddy, startNginxProxy, startNginxUpstream, startPortless, PORTLESS_VERSION } from './lib/peers.js';
import { cleanupAll, freePort, isShuttingDown, runCommand, sleep, startProcess, waitForPort } from './lib/procs.js';
import { cpuSeconds, rssBytes, treeCpuSeconds, treeRssBytes } from './lib/proc-stats.js';
import { finishRow, judgeTargets, renderTable, SETTLED_IDLE_S, type BenchResults, type RoundResult, type ThroughputRow } from './lib/report.js';
import { measureRemoteTls } from './lib/remote-tls.js';
import { measureRouteBuild } from './lib/route-build.js';
import { median } from './lib/stats.js';
import { measureUpload } from './lib/upload.js';
import { measureWsEcho } from './lib/ws-echo.js';
import { measureRequestLog, requestLogTarget } from './lib/request-log.js';
import { summariseProfile } from './lib/cpu-profile.js';
import { createCertificateAuthority, issueLeafCertificate } from '../certs/authority.js';

/** Phase sizes; `--quick` trades precision for a run of about a minute. */
interface Plan {
  durationS: number;
  rounds: number;
  latencyDurationS: number;
  /** Requests per target in the alternating 1-connection probe. */
  latencyRequests: number;
  warmupS: number;
  flips: number;
  useFlips: number;
  uploadBytes: number;
  worktrees: number;
  idleCpuS: number;
  wsMessages: number;
  /** HEAD+GET and GET+GET pairs each, to the HTTPS remote. */
  remoteTlsPairs: number;
  /** Requests on the unrelated route, idle and while the HEAD+GET loop runs. */
  neighbourRequests: number;
}

const FULL: Plan = { durationS: 3, rounds: 5, latencyDurationS: 3, latencyRequests: 20_000, warmupS: 5, flips: 60, useFlips: 50, uploadBytes: 1024 ** 3, worktrees: 200, idleCpuS: 10, wsMessages: 200_000, remoteTlsPairs: 1000, neighbourRequests: 2000 };
const QUICK: Plan = { durationS: 2, rounds: 1, latencyDurationS: 1, latencyRequests: 3000, warmupS: 2, flips: 20, useFlips: 6, uploadBytes: 128 * 1024 ** 2, worktrees: 20, idleCpuS: 3, wsMessages: 50_000, remoteTlsPairs: 200, neighbourRequests: 400 };

/** Bound of each half of the remote TLS phase. */
const REMOTE_TLS_MAX_MS = 60_000;
/** Bound of one WebSocket echo run. */
const WS_MAX_MS = 5000;
/** Wait after registering before reading idle RSS, so start-up garbage can be collected. */
const SETTLE_MS = 3000;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function parseArgs(argv: string[]): { plan: Plan; withPeers: boolean; profile: boolean; keep: boolean; quick: boolean } {
  const has = (flag: string): boolean => argv.includes(flag);
  const num = (flag: string): number | undefined => {
    const i = argv.indexOf(flag);
    const value = i >= 0 ? Number(argv[i + 1]) : Number.NaN;
    return Number.isFinite(value) && value > 0 ? value : undefined;
  };
  const quick = has('--quick');
  const plan = { ...(quick ? QUICK : FULL) };
  plan.durationS = num('--duration') ?? plan.durationS;
  plan.rounds = num('--rounds') ?? plan.rounds;
  return { plan, withPeers: has('--with-peers'), profile: has('--profile'), keep: has('--keep'), quick };
}

function machine(): BenchResults['machine'] {
  const cpuModel = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  return { nproc: cpus().length, cpuModel, memTotalMiB: Math.round(totalmem() / 1024 / 1024), kernel: release() };
}

const log = (line: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

async function main(): Promise<void> {
  const started = performance.now();
  const { plan, withPeers, profile, keep, quick } = parseArgs(process.argv.slice(2));
  const scratch = mkdtempSync(join(tmpdir(), 'devproxy-bench-'));
  if (!keep) scratchToRemove = scratch;
  const cli: Cli = { root: ROOT };
  log(`scratch folder ${scratch}`);

  const results: BenchResults = {
    date: new Date().toISOString(),
    node: process.version,
    machine: machine(),
    tools: {},
    config: { durationS: plan.durationS, rounds: plan.rounds, connections: 50, threads: 2, latencyDurationS: plan.latencyDurationS, profile, quick },
    loadAverage: { start: loadavg()[0] ?? Number.NaN, end: Number.NaN },
    upstream: '',
    notes: [],
    errors: [],
    throughput: [],
    memory: {},
    scale: { worktrees: plan.worktrees, services: SCALE_SERVICES },
    targets: [],
    totalS: 0,
  };
  /** Runs one phase; a failure is recorded and the run goes on with the next phase. */
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T | undefined> => {
    if (isShuttingDown()) throw new Error('interrupted');
    log(name);
    try {
      return await fn();
    } catch (err) {
      const message = `${name}: ${err instanceof Error ? err.message : String(err)}`;
      results.errors.push(message);
      log(`FAILED ${message}`);
      return undefined;
    }
  };

  const peers = await findPeers(withPeers, log);
  results.notes.push(...peers.notes);
  results.tools = { ...peers.versions };
  const tools: LoadTools = { nodeLoad: join(ROOT, 'dist', 'bench', 'node-load.js') };
  if (peers.wrk) tools.wrk = peers.wrk;
  if (peers.h2load) tools.h2load = peers.h2load;
  if (!peers.wrk) results.notes.push('wrk missing: HTTP/1.1 loads use the Node client in bench/node-load.ts (slower; it competes for the same 2 cores)');
  if (!peers.h2load) results.notes.push('h2load missing: HTTP/2 loads use the Node http2 client in bench/node-load.ts');

  // Upstreams: nginx (faster than any proxy in front of it) or one Node process.
  const ports = {
    upstream: await freePort(),
    flipA: await freePort(),
    flipB: await freePort(),
    sink: await freePort(),
    ws: await freePort(),
    tlsRemote: await freePort(),
    devHttp: await freePort(),
    devHttps: await freePort(),
    caddy: await freePort(),
    caddyHttps: await freePort(),
    nginx: await freePort(),
    portless: await freePort(),
    scaleHttp: await freePort(),
    scaleHttps: await freePort(),
  };
  let upstreamPid: number | undefined;
  if (peers.nginx) {
    upstreamPid = (await startNginxUpstream(peers.nginx, scratch, ports.upstream)).child.pid;
    results.upstream = `nginx ${peers.versions.nginx ?? ''} (return 200 "ok", 1 worker)`;
  } else {
    const fixed = startProcess('upstream', process.execPath, [join(ROOT, 'dist', 'bench', 'upstreams.js'), 'fixed', String(ports.upstream)], { logFile: join(scratch, 'upstream.log') });
    await waitForPort(ports.upstream, 10_000, 'node upstream');
    upstreamPid = fixed.child.pid;
    results.upstream = `node:http, 1 process (nginx missing) pid ${fixed.child.pid ?? '?'}`;
  }
  // The HTTPS stand-in remote gets a CA of its own, trusted through the bench repository's `ca:`.
  const remoteCa = await createCertificateAuthority({ commonName: 'devproxy bench remote CA', validityDays: 1 });
  const remoteLeaf = await issueLeafCertificate(remoteCa, ['remote-dev.localhost'], { validityDays: 1 });
  const tlsFiles = { caFile: join(scratch, 'remote-ca.pem'), certFile: join(scratch, 'remote-cert.pem'), keyFile: join(scratch, 'remote-key.pem') };
  writeFileSync(tlsFiles.caFile, remoteCa.certPem);
  writeFileSync(tlsFiles.certFile, remoteLeaf.certPem);
  writeFileSync(tlsFiles.keyFile, remoteLeaf.keyPem, { mode: 0o600 });
  const aux = { flipA: ports.flipA, flipB: ports.flipB, sink: ports.sink, ws: ports.ws };
  const auxSpec = { ...aux, tls: { port: ports.tlsRemote, certFile: tlsFiles.certFile, keyFile: tlsFiles.keyFile } };
  startProcess('aux-upstreams', process.execPath, [join(ROOT, 'dist', 'bench', 'upstreams.js'), 'aux', JSON.stringify(auxSpec)], { logFile: join(scratch, 'aux.log') });
  await Promise.all([...Object.values(aux), ports.tlsRemote].map((p) => waitForPort(p, 10_000, 'aux upstreams')));

  const haveCli = cliBuilt(cli);
  if (!haveCli) results.errors.push('devproxy CLI not built (dist/cli/index.js missing): every devproxy figure is n/a');

  // Daemon A: the small repository, for throughput, latency, flips, upload and WebSocket.
  let daemon: Daemon | undefined;
  let repo: string | undefined;
  const profDir = join(scratch, 'cpu-prof');
  if (haveCli) {
    daemon = await phase('start devproxy and register the bench repository', async () => {
      const home = join(scratch, 'home-a');
      const d = await startDaemonPreferHttps(
        cli,
        { home, httpPort: ports.devHttp, httpsPort: ports.devHttps, ...(profile ? { cpuProfDir: profDir } : {}) },
        results.notes,
      );
      repo = await createBenchRepo(join(scratch, 'bench'), { api: ports.upstream, ...aux, tls: { port: ports.tlsRemote, caFile: tlsFiles.caFile } });
      const init = await runCli(cli, home, ['init'], repo);
      if (init.code !== 0) throw new Error(`devproxy init failed: ${init.stderr || init.stdout}`);
      await waitForRoute(ports.devHttp, `api.bench.localhost:${ports.devHttp}`, (p) => p.status === 200 && p.body === 'ok' && p.route === 'local');
      await waitForRoute(ports.devHttp, `flip.bench.localhost:${ports.devHttp}`, (p) => p.body === 'A');
      return d;
    });
  }
  if (daemon) {
    const pid = daemon.info.pid;
    await sleep(SETTLE_MS);
    results.memory.idle1Bytes = rssBytes(pid);
    await sleep(SETTLED_IDLE_S * 1000 - SETTLE_MS);
    (results.memory.settled ??= {}).idle1Bytes = rssBytes(pid);
    if (profile) results.notes.push('daemon ran under --cpu-prof: its figures carry the profiler overhead');
  }

  // Peers in front of the same upstream.
  // `pid` is the serving process (with its children): its CPU time per request is the figure
  // least disturbed by whatever else the shared machine runs.
  const targets: Array<{ row: ThroughputRow; pid?: number; load?: Omit<LoadRequest, 'connections' | 'threads' | 'durationS' | 'scratchDir'> }> = [];
  const addRow = (key: ThroughputRow['key'], label: string, load: (typeof targets)[number]['load'], skipped?: string, pid?: number): void => {
    const row: ThroughputRow = { key, label, rounds: [], roundOf: [], rps: Number.NaN, p50Us: Number.NaN, p99Us: Number.NaN, cpuUsPerReq: Number.NaN, bad: 0 };
    if (skipped !== undefined) row.skipped = skipped;
    targets.push({ row, ...(pid !== undefined ? { pid } : {}), ...(load && skipped === undefined ? { load } : {}) });
  };
  addRow('direct', 'direct upstream', { port: ports.upstream }, undefined, upstreamPid);
  addRow('devproxy-http', 'devproxy HTTP/1.1', { port: ports.devHttp, host: `api.bench.localhost:${ports.devHttp}` }, daemon ? undefined : 'devproxy not running', daemon?.info.pid);
  const httpsPort = daemon?.info.httpsPort ?? null;
  addRow(
    'devproxy-h2',
    'devproxy HTTPS h2',
    httpsPort === null ? undefined : { port: httpsPort, host: `api.bench.localhost:${httpsPort}`, h2: true },
    !daemon ? 'devproxy not running' : httpsPort === null ? 'no HTTPS listener (httpsPort null)' : undefined,
    daemon?.info.pid,
  );
  // Caddy's HTTPS site gets a certificate of the bench's CA for the same name devproxy serves, so
  // the h2 rows differ only by the proxy (h2load checks no certificate).
  const caddyTls = { port: ports.caddyHttps, host: 'api.bench.localhost', certFile: join(scratch, 'caddy-cert.pem'), keyFile: join(scratch, 'caddy-key.pem') };
  const caddyLeaf = await issueLeafCertificate(remoteCa, [caddyTls.host], { validityDays: 1 });
  writeFileSync(caddyTls.certFile, caddyLeaf.certPem);
  writeFileSync(caddyTls.keyFile, caddyLeaf.keyPem, { mode: 0o600 });
  const caddy = peers.caddy ? await phase('start Caddy', () => startCaddy(peers.caddy as string, scratch, ports.caddy, ports.upstream, caddyTls)) : undefined;
  const caddyLabel = `Caddy${peers.versions.caddy ? ` ${peers.versions.caddy}` : ''} reverse_proxy`;
  const caddySkipped = !peers.caddy ? 'caddy not installed' : caddy ? undefined : 'failed to start';
  addRow('caddy', caddyLabel, { port: ports.caddy }, caddySkipped, caddy?.child.pid);
  addRow('caddy-h2', `${caddyLabel} HTTPS h2`, { port: ports.caddyHttps, host: `${caddyTls.host}:${ports.caddyHttps}`, h2: true }, caddySkipped, caddy?.child.pid);
  const nginx = peers.nginx ? await phase('start nginx proxy', () => startNginxProxy(peers.nginx as string, scratch, ports.nginx, ports.upstream)) : undefined;
  addRow('nginx', `nginx${peers.versions.nginx ? ` ${peers.versions.nginx}` : ''} proxy_pass keepalive`, { port: ports.nginx }, !peers.nginx ? 'nginx not installed' : nginx ? undefined : 'failed to start', nginx?.child.pid);
  let portlessHost = '';
  let portlessPid: number | undefined;
  const portlessOk = peers.portless
    ? await phase(`start portless ${PORTLESS_VERSION}`, async () => {
        const handle = await startPortless(peers.portless as string, scratch, ports.portless, ports.upstream);
        portlessHost = handle.host;
        portlessPid = handle.pid;
        await waitForRoute(ports.portless, portlessHost, (p) => p.status === 200 && p.body === 'ok', 15_000);
        return handle;
      }).then((h) => (h ? undefined : 'failed to start'))
    : 'portless not installed';
  addRow('portless', `portless ${peers.versions.portless ?? PORTLESS_VERSION}`, { port: ports.portless, host: portlessHost }, portlessOk, portlessPid);

  // The peers' idle footprint, read like the daemon's: after one served request and the same settle.
  if (caddy?.child.pid !== undefined || portlessPid !== undefined) {
    await phase('peers idle RSS', async () => {
      if (caddy) await waitForRoute(ports.caddy, `127.0.0.1:${ports.caddy}`, (p) => p.status === 200, 10_000);
      await sleep(SETTLE_MS);
      if (caddy?.child.pid !== undefined) results.memory.caddyIdleBytes = treeRssBytes(caddy.child.pid);
      if (portlessPid !== undefined && portlessOk === undefined) results.memory.portlessIdleBytes = treeRssBytes(portlessPid);
      await sleep(SETTLED_IDLE_S * 1000 - SETTLE_MS);
      const settled = (results.memory.settled ??= {});
      if (caddy?.child.pid !== undefined) settled.caddyIdleBytes = treeRssBytes(caddy.child.pid);
      if (portlessPid !== undefined && portlessOk === undefined) settled.portlessIdleBytes = treeRssBytes(portlessPid);
    });
  }

  const loadOf = (t: (typeof targets)[number], durationS: number, connections = 50, threads = 2): LoadRequest => ({
    ...(t.load as NonNullable<typeof t.load>),
    connections,
    threads,
    durationS,
    scratchDir: scratch,
  });

  // 1. Throughput: a warm-up per target, then rounds in rotating order so drift hits all alike.
  const runnable = targets.filter((t) => t.load);
  await phase(`throughput: warm-up ${plan.warmupS} s per target`, async () => {
    for (const t of runnable) await runLoad(tools, loadOf(t, plan.warmupS)).catch(() => undefined);
  });
  for (let round = 0; round < plan.rounds; round++) {
    for (let i = 0; i < runnable.length; i++) {
      const t = runnable[(i + round) % runnable.length] as (typeof runnable)[number];
      const result = await phase(`throughput round ${round + 1}/${plan.rounds}: ${t.row.label}`, async (): Promise<RoundResult> => {
        const cpu0 = t.pid !== undefined ? treeCpuSeconds(t.pid) : Number.NaN;
        const load = await runLoad(tools, loadOf(t, plan.durationS));
        const cpu = t.pid !== undefined ? treeCpuSeconds(t.pid) - cpu0 : Number.NaN;
        return { ...load, cpuUsPerReq: load.requests > 0 ? (cpu * 1e6) / load.requests : Number.NaN };
      });
      if (result) {
        t.row.rounds.push(result);
        t.row.roundOf.push(round);
        log(`  ${Math.round(result.rps)} req/s p50 ${Math.round(result.p50Us)} µs p99 ${Math.round(result.p99Us)} µs, ${result.cpuUsPerReq.toFixed(1)} µs CPU/req (${result.errors + result.non2xx} bad)`);
      }
    }
  }
  results.throughput = targets.map((t) => finishRow(t.row));
  if (daemon) results.memory.afterLoadBytes = rssBytes(daemon.info.pid);

  // 2. Added latency at one connection.
  const direct = targets.find((t) => t.row.key === 'direct');
  const devHttp = targets.find((t) => t.row.key === 'devproxy-http' && t.load);
  if (direct && devHttp) {
    await phase('latency at 1 connection', async () => {
      const probe: ProbeResult[] = [];
      const wrkDirect: LoadResult[] = [];
      const wrkDev: LoadResult[] = [];
      const spec: ProbeSpec = { a: { port: ports.upstream }, b: { port: ports.devHttp, host: `api.bench.localhost:${ports.devHttp}` }, count: plan.latencyRequests, maxMs: 10_000 };
      for (let round = 0; round < plan.rounds; round++) {
        const run = await runCommand(process.execPath, [join(ROOT, 'dist', 'bench', 'latency-probe.js'), JSON.stringify(spec)], { timeoutMs: 30_000 });
        if (run.code !== 0) throw new Error(`latency probe failed: ${run.stderr}`);
        probe.push(JSON.parse(run.stdout) as ProbeResult);
        wrkDirect.push(await runLoad(tools, loadOf(direct, plan.latencyDurationS, 1, 1)));
        wrkDev.push(await runLoad(tools, loadOf(devHttp, plan.latencyDurationS, 1, 1)));
      }
      const med = (xs: Array<{ p50Us: number; p99Us: number }>): { p50Us: number; p99Us: number } => ({ p50Us: median(xs.map((v) => v.p50Us)), p99Us: median(xs.map((v) => v.p99Us)) });
      const d = med(probe.map((p) => p.a));
      const v = med(probe.map((p) => p.b));
      const wd = med(wrkDirect);
      const wv = med(wrkDev);
      results.latency1 = {
        direct: d,
        devproxy: v,
        addedP50Us: v.p50Us - d.p50Us,
        addedP99Us: v.p99Us - d.p99Us,
        tool: `${probe[0]?.tool ?? ''}, ${probe[0]?.count ?? 0} requests per target`,
        closedLoop: { direct: wd, devproxy: wv, addedP50Us: wv.p50Us - wd.p50Us, addedP99Us: wv.p99Us - wd.p99Us, tool: `${wrkDirect[0]?.tool ?? ''} -t1 -c1 -d${plan.latencyDurationS}s` },
      };
    });
  }

  // 7. The request log's cost on the hot path, and its memory once full.
  if (daemon && devHttp) {
    const d = daemon;
    results.requestLog = await phase(`request log on vs off (${plan.rounds} rounds)`, () =>
      measureRequestLog(tools, loadOf(devHttp, plan.durationS), { port: d.info.adminPort, token: d.info.token }, d.info.pid, plan.rounds),
    );
  }

  if (daemon && repo) {
    const d = daemon;
    const benchRepo = repo;
    // 6. WebSocket echo.
    await phase('WebSocket echo', async () => {
      const rounds = { direct: [] as Awaited<ReturnType<typeof measureWsEcho>>[], devproxy: [] as Awaited<ReturnType<typeof measureWsEcho>>[] };
      for (let round = 0; round < plan.rounds; round++) {
        rounds.direct.push(await measureWsEcho(ports.ws, undefined, plan.wsMessages, WS_MAX_MS));
        rounds.devproxy.push(await measureWsEcho(ports.devHttp, `ws.bench.localhost:${ports.devHttp}`, plan.wsMessages, WS_MAX_MS));
      }
      const directRate = median(rounds.direct.map((r) => r.perSecond));
      const devRate = median(rounds.devproxy.map((r) => r.perSecond));
      results.websocket = { direct: directRate, devproxy: devRate, ratio: devRate / directRate, rounds };
    });

    // 8. An HTTPS remote: HEAD then GET, and a neighbour route while a client loops HEAD+GET.
    results.remoteTls = await phase('HTTPS remote: GET after HEAD, neighbour route under a HEAD+GET loop', () =>
      measureRemoteTls({
        port: ports.devHttp,
        tlsHost: `tls.bench.localhost:${ports.devHttp}`,
        otherHost: `api.bench.localhost:${ports.devHttp}`,
        pairs: plan.remoteTlsPairs,
        neighbourRequests: plan.neighbourRequests,
        maxMs: REMOTE_TLS_MAX_MS,
      }),
    );

    // 3. Flips.
    const flipHost = `flip.bench.localhost:${ports.devHttp}`;
    results.flips = await phase(`flips by atomic file write (${plan.flips})`, () => measureFileFlips(ports.devHttp, flipHost, benchRepo, plan.flips));
    results.useFlips = await phase(`flips through devproxy use (${plan.useFlips})`, () => measureUseFlips(cli, d.home, ports.devHttp, flipHost, benchRepo, plan.useFlips));

    // 4. Upload through the proxy while sampling RSS.
    results.memory.upload = await phase(`${plan.uploadBytes / 1024 ** 2} MiB streamed upload`, () =>
      measureUpload(ports.devHttp, `sink.bench.localhost:${ports.devHttp}`, d.info.pid, plan.uploadBytes, 120_000),
    );

    await phase('stop devproxy (bench repository)', () => d.stop());
    if (profile) {
      await phase('summarise the daemon CPU profile', async () => {
        const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
        const mine = files.find((f) => f.includes(`.${d.info.pid}.`)) ?? files[0];
        if (!mine) throw new Error('no .cpuprofile written (the daemon did not exit cleanly)');
        const resultsDir = join(ROOT, 'bench', 'results');
        mkdirSync(resultsDir, { recursive: true });
        // `.json` so that the results folder's ignore rule covers it.
        const kept = join(resultsDir, `${results.date.replace(/[:.]/g, '-')}.cpuprofile.json`);
        copyFileSync(join(profDir, mine), kept);
        results.profile = summariseProfile(kept);
      });
    }
  }

  // 5. Scale: routing table build in process, then a second daemon watching many worktrees.
  results.scale.routeBuild = await phase(`buildRoutingTable, ${plan.worktrees} worktrees`, async () => measureRouteBuild(plan.worktrees, SCALE_SERVICES, 2000, 5000));
  if (haveCli) {
    await phase(`daemon with ${plan.worktrees} worktrees × ${SCALE_SERVICES} services`, async () => {
      const t0 = performance.now();
      const paths = await createScaleRepo(join(scratch, 'scale'), plan.worktrees, ports.upstream, (n) => log(`  ${n} worktrees created`));
      results.scale.setupS = (performance.now() - t0) / 1000;
      const home = join(scratch, 'home-b');
      const d = await startDaemonPreferHttps(cli, { home, httpPort: ports.scaleHttp, httpsPort: ports.scaleHttps }, results.notes);
      const init = await runCli(cli, home, ['init'], paths[0]);
      if (init.code !== 0) throw new Error(`devproxy init failed: ${init.stderr || init.stdout}`);
      const last = `wt-${String(plan.worktrees - 1).padStart(3, '0')}`;
      const served = (p: { status: number; body: string }): boolean => p.status === 200 && p.body === 'ok';
      await waitForRoute(ports.scaleHttp, `s${SCALE_SERVICES}.${last}.localhost:${ports.scaleHttp}`, served, 60_000);
      await waitForRoute(ports.scaleHttp, `s1.scale.localhost:${ports.scaleHttp}`, served, 10_000);
      results.scale.routesServed = plan.worktrees * SCALE_SERVICES;
      await sleep(SETTLE_MS);
      results.memory.idleScaleBytes = rssBytes(d.info.pid);
      const cpu0 = cpuSeconds(d.info.pid);
      const w0 = performance.now();
      await sleep(plan.idleCpuS * 1000);
      const window = (performance.now() - w0) / 1000;
      results.scale.idleCpuPct = ((cpuSeconds(d.info.pid) - cpu0) / window) * 100;
      results.scale.idleCpuWindowS = Math.round(window * 10) / 10;
      await sleep(Math.max(0, SETTLED_IDLE_S * 1000 - SETTLE_MS - window * 1000));
      (results.memory.settled ??= {}).idleScaleBytes = rssBytes(d.info.pid);
      await d.stop();
    });
  }

  results.totalS = (performance.now() - started) / 1000;
  results.loadAverage.end = loadavg()[0] ?? Number.NaN;
  results.targets = [...judgeTargets(results), requestLogTarget(results.requestLog)];
  const resultsDir = join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const json = `${JSON.stringify(results, null, 2)}\n`;
  const file = join(resultsDir, `${results.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, json);
  writeFileSync(join(resultsDir, 'latest.json'), json);
  process.stdout.write(`${renderTable(results)}\nresults: ${file}\n`);
  if (keep) log(`kept scratch folder ${scratch}`);
}

let scratchToRemove: string | undefined;

async function shutdown(code: number): Promise<never> {
  const errors = await cleanupAll();
  // A phase that was mid-way at Ctrl-C (e.g. a daemon starting) may still register something: let
  // the run unwind (phases refuse to start now), then stop that too.
  await Promise.race([running.catch(() => undefined), sleep(15_000)]);
  errors.push(...(await cleanupAll()));
  for (const e of errors) log(`cleanup: ${e}`);
  if (scratchToRemove) rmSync(scratchToRemove, { recursive: true, force: true });
  process.exit(code);
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${signal}: stopping everything started`);
    void shutdown(130);
  });
}

const running = main();
running.then(
  () => (interrupted ? undefined : shutdown(0)),
  (err: unknown) => {
    if (interrupted) return undefined;
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return shutdown(1);
  },
);
