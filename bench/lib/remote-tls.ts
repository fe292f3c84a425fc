/**
 * The remote TLS phase: what a HEAD costs the next request to an HTTPS remote, and what a client
 * looping HEAD+GET on an HTTPS remote costs an unrelated route. Before one secure context per CA
 * set (and HEAD keeping the pooled connection), each HEAD dropped the upstream connection and each
 * new verified TLS connection blocked the daemon's event loop for ~40 ms.
 * Sequential requests on keep-alive connections to 127.0.0.1 only; bounded in count and time.
 */
import { Agent, request } from 'node:http';
import { quantile } from './stats.js';

/** p50/p99 of one series, µs. */
export interface LatencyPair {
  p50Us: number;
  p99Us: number;
}

/** Figures of the phase. */
export interface RemoteTlsResult {
  /** HEAD+GET pairs and GET+GET pairs each (the timed request is the second GET). */
  pairs: number;
  getAfterGet: LatencyPair;
  getAfterHead: LatencyPair;
  /** p50 of GET-after-HEAD / p50 of GET-after-GET; goal ≤ 1.5. */
  headRatio: number;
  /** New TLS connections the stand-in remote accepted during those pairs (0 when the pool keeps its connection). */
  remoteConnections: number;
  /** Requests on the unrelated route while the loop ran (as many again idle, in alternating windows). */
  neighbourRequests: number;
  neighbourIdle: LatencyPair;
  neighbourBusy: LatencyPair;
  /** p50 of the unrelated route while another client loops HEAD+GET on the HTTPS remote / its idle p50; goal ≤ 1.5. */
  neighbourRatio: number;
  /** Requests the HEAD+GET loop sent meanwhile. */
  loopRequests: number;
}

/** What the phase talks to: devproxy's HTTP port and two of its stable hosts. */
export interface RemoteTlsSpec {
  port: number;
  /** Host routed to the HTTPS stand-in remote (it answers `GET /connections` with its TLS connection count). */
  tlsHost: string;
  /** Host of an unrelated route (a local upstream). */
  otherHost: string;
  pairs: number;
  neighbourRequests: number;
  /** Bound of each of the two measures. */
  maxMs: number;
}

/** Warm-up pairs before recording (JIT, pools, TLS session). */
const WARMUP_PAIRS = 50;
/** Idle and busy windows of the neighbour measure, alternating. */
const NEIGHBOUR_ROUNDS = 5;

/** Sends one request on `agent` and resolves with its duration in µs and its body. */
function timed(port: number, host: string, agent: Agent, method: string, path = '/'): Promise<{ us: number; body: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ host: '127.0.0.1', port, path, method, headers: { host }, agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${method} ${host}${path}: status ${res.statusCode}: ${body.slice(0, 200)}`));
        else resolve({ us: (performance.now() - t0) * 1000, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${host}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function pair(samples: number[]): LatencyPair {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50Us: quantile(sorted, 0.5), p99Us: quantile(sorted, 0.99) };
}

async function sequentialGets(spec: RemoteTlsSpec, agent: Agent, count: number, deadline: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count && performance.now() < deadline; i++) samples.push((await timed(spec.port, spec.otherHost, agent, 'GET')).us);
  return samples;
}

/** Runs both measures, each bounded by `maxMs`; throws when a request fails. */
export async function measureRemoteTls(spec: RemoteTlsSpec): Promise<RemoteTlsResult> {
  let deadline = performance.now() + spec.maxMs;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const loopAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < WARMUP_PAIRS; i++) {
      await timed(spec.port, spec.tlsHost, agent, 'HEAD');
      await timed(spec.port, spec.tlsHost, agent, 'GET');
      await timed(spec.port, spec.otherHost, agent, 'GET');
    }
    const connections = async (): Promise<number> => Number((await timed(spec.port, spec.tlsHost, agent, 'GET', '/connections')).body);
    const before = await connections();
    const afterHead: number[] = [];
    const afterGet: number[] = [];
    for (let i = 0; i < spec.pairs && performance.now() < deadline; i++) {
      const first = i % 2 === 0 ? 'HEAD' : 'GET';
      await timed(spec.port, spec.tlsHost, agent, first);
      const { us } = await timed(spec.port, spec.tlsHost, agent, 'GET');
      (first === 'HEAD' ? afterHead : afterGet).push(us);
    }
    const remoteConnections = (await connections()) - before;

    deadline = performance.now() + spec.maxMs;
    // Idle and busy windows alternate, so a machine that gets busier or calmer meanwhile hits both alike.
    const idle: number[] = [];
    const busy: number[] = [];
    let loopRequests = 0;
    const window = Math.max(1, Math.floor(spec.neighbourRequests / NEIGHBOUR_ROUNDS));
    for (let round = 0; round < NEIGHBOUR_ROUNDS && performance.now() < deadline; round++) {
      idle.push(...(await sequentialGets(spec, agent, window, deadline)));
      let stop = false;
      const loop = (async () => {
        while (!stop && performance.now() < deadline) {
          await timed(spec.port, spec.tlsHost, loopAgent, 'HEAD');
          await timed(spec.port, spec.tlsHost, loopAgent, 'GET');
          loopRequests += 2;
        }
      })();
      try {
        busy.push(...(await sequentialGets(spec, agent, window, deadline)));
      } finally {
        stop = true;
        await loop;
      }
    }
    const getAfterHead = pair(afterHead);
    const getAfterGet = pair(afterGet);
    const neighbourIdle = pair(idle);
    const neighbourBusy = pair(busy);
    return {
      pairs: afterHead.length,
      getAfterGet,
      getAfterHead,
      headRatio: getAfterHead.p50Us / getAfterGet.p50Us,
      remoteConnections,
      neighbourRequests: busy.length,
      neighbourIdle,
      neighbourBusy,
      neighbourRatio: neighbourBusy.p50Us / neighbourIdle.p50Us,
      loopRequests,
    };
  } finally {
    agent.destroy();
    loopAgent.destroy();
  }
}
