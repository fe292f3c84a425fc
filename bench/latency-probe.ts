/**
 * Added latency at light load, robust to a noisy shared machine: one keep-alive connection to
 * each of two targets, requests strictly one at a time, alternating between the targets (and
 * which goes first), so a pause of the machine hits both alike. `node latency-probe.js '<ProbeSpec>'`
 * prints one `ProbeResult` JSON line. Only 127.0.0.1 is accepted; bounded in count and time.
 */
import { Agent, request, type RequestOptions } from 'node:http';

/** One target: 127.0.0.1:port with an optional Host header. */
export interface ProbeTarget {
  port: number;
  host?: string;
}

/** What to probe. */
export interface ProbeSpec {
  a: ProbeTarget;
  b: ProbeTarget;
  /** Requests per target. */
  count: number;
  maxMs: number;
}

/** Percentiles per target, µs. */
export interface ProbeResult {
  tool: string;
  count: number;
  a: { p50Us: number; p99Us: number };
  b: { p50Us: number; p99Us: number };
}

function once(options: RequestOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(options, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => (res.statusCode === 200 ? resolve((performance.now() - t0) * 1000) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as ProbeSpec;
  const options = (t: ProbeTarget): RequestOptions => ({
    host: '127.0.0.1',
    port: t.port,
    path: '/',
    agent: new Agent({ keepAlive: true, maxSockets: 1 }),
    headers: { host: t.host ?? `127.0.0.1:${t.port}` },
  });
  const a = options(spec.a);
  const b = options(spec.b);
  const la = new Float64Array(spec.count);
  const lb = new Float64Array(spec.count);
  // Warm both connections (and the JIT) before recording.
  for (let i = 0; i < 200; i++) {
    await once(a);
    await once(b);
  }
  const deadline = performance.now() + spec.maxMs;
  let n = 0;
  for (; n < spec.count && performance.now() < deadline; n++) {
    if (n % 2 === 0) {
      la[n] = await once(a);
      lb[n] = await once(b);
    } else {
      lb[n] = await once(b);
      la[n] = await once(a);
    }
  }
  const sa = la.subarray(0, n).sort();
  const sb = lb.subarray(0, n).sort();
  const result: ProbeResult = {
    tool: 'node http client, alternating',
    count: n,
    a: { p50Us: percentile(sa, 0.5), p99Us: percentile(sa, 0.99) },
    b: { p50Us: percentile(sb, 0.5), p99Us: percentile(sb, 0.99) },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
