/**
 * A bounded closed-loop load generator in Node, the fallback when wrk or h2load is missing:
 * `node node-load.js '<LoadSpec json>'` prints one `LoadResult` JSON line. Each of `connections`
 * loops keeps one request in flight on its own keep-alive connection (HTTP/1.1) or HTTP/2 session,
 * until `durationMs` or `maxRequests` is reached. Only 127.0.0.1 is accepted as a target.
 */
import { Agent, request } from 'node:http';
import { connect, constants, type ClientHttp2Session } from 'node:http2';

/** What to load. */
export interface LoadSpec {
  /** `http://127.0.0.1:port/path` or `https://127.0.0.1:port/path` (h2). */
  url: string;
  /** Host header (HTTP/1.1) or :authority (h2); defaults to the URL's. */
  host?: string;
  /** TLS SNI for h2. */
  servername?: string;
  h2?: boolean;
  connections: number;
  durationMs: number;
  maxRequests: number;
}

/** Outcome of one load. */
export interface LoadResult {
  tool: string;
  requests: number;
  errors: number;
  non2xx: number;
  seconds: number;
  rps: number;
  p50Us: number;
  p99Us: number;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const url = new URL(spec.url);
  if (url.hostname !== '127.0.0.1') throw new Error(`refusing to load ${url.hostname}: loopback only`);
  const latencies = new Float64Array(spec.maxRequests);
  let count = 0;
  let errors = 0;
  let non2xx = 0;
  const started = performance.now();
  const deadline = started + spec.durationMs;
  const more = (): boolean => count < spec.maxRequests && performance.now() < deadline;
  const record = (t0: number, status: number): void => {
    if (count < spec.maxRequests) latencies[count++] = (performance.now() - t0) * 1000;
    if (status < 200 || status > 299) non2xx++;
  };

  const loops: Promise<void>[] = [];
  const sessions: ClientHttp2Session[] = [];
  if (spec.h2) {
    for (let i = 0; i < spec.connections; i++) {
      const session = connect(url.origin, { rejectUnauthorized: false, servername: spec.servername ?? url.hostname });
      session.on('error', () => errors++);
      sessions.push(session);
      const headers = {
        [constants.HTTP2_HEADER_METHOD]: 'GET',
        [constants.HTTP2_HEADER_PATH]: url.pathname,
        [constants.HTTP2_HEADER_AUTHORITY]: spec.host ?? url.host,
      };
      loops.push(
        (async () => {
          while (more() && !session.destroyed) {
            await new Promise<void>((resolve) => {
              const t0 = performance.now();
              let status = 0;
              const stream = session.request(headers, { endStream: true });
              stream.on('response', (h) => (status = Number(h[constants.HTTP2_HEADER_STATUS])));
              stream.on('data', () => undefined);
              stream.on('end', () => {
                record(t0, status);
                resolve();
              });
              stream.on('error', () => {
                errors++;
                resolve();
              });
            });
          }
        })(),
      );
    }
  } else {
    const agent = new Agent({ keepAlive: true, maxSockets: spec.connections });
    const options = { host: '127.0.0.1', port: url.port, path: url.pathname, agent, headers: { host: spec.host ?? url.host } };
    for (let i = 0; i < spec.connections; i++) {
      loops.push(
        (async () => {
          while (more()) {
            await new Promise<void>((resolve) => {
              const t0 = performance.now();
              const req = request(options, (res) => {
                res.on('data', () => undefined);
                res.on('end', () => {
                  record(t0, res.statusCode ?? 0);
                  resolve();
                });
              });
              req.on('error', () => {
                errors++;
                resolve();
              });
              req.end();
            });
          }
        })(),
      );
    }
  }
  await Promise.all(loops);
  const seconds = (performance.now() - started) / 1000;
  for (const session of sessions) session.close();
  const sorted = latencies.subarray(0, count).sort();
  const result: LoadResult = {
    tool: spec.h2 ? 'node http2 client' : 'node http client',
    requests: count,
    errors,
    non2xx,
    seconds,
    rps: count / seconds,
    p50Us: percentile(sorted, 0.5),
    p99Us: percentile(sorted, 0.99),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
