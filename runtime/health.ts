/**
 * Health probes of local instances: an HTTP GET of the service's health path (2xx/3xx is
 * healthy) or, without a path, a TCP connect. `waitHealthy` polls until healthy, aborted or
 * timed out; it never throws for an unhealthy service, it answers false.
 */
import { request } from 'node:http';
import { connect } from 'node:net';

/** How long one probe may take before it counts as a failure. */
export const PROBE_TIMEOUT_MS = 2_000;

/** Shortest timeout a probe gets, even right at the deadline. */
const MIN_PROBE_TIMEOUT_MS = 250;

/** What a probe checks on 127.0.0.1:<port>. */
export type HealthCheck =
  /** GET the path; 2xx and 3xx are healthy. */
  | { kind: 'http'; path: string }
  /**
   * GET `/` and accept any HTTP answer. Used for containers without a health path: docker-proxy
   * accepts TCP connections on the published port before the app listens, so a bare connect
   * would report a container healthy too early.
   */
  | { kind: 'http-any' }
  /** A TCP connect that succeeds. */
  | { kind: 'tcp' };

/** Picks the probe for a service: its health path when it has one, else `fallback`. */
export function healthCheckFor(healthPath: string | undefined, fallback: 'tcp' | 'http-any' = 'tcp'): HealthCheck {
  if (healthPath) return { kind: 'http', path: healthPath.startsWith('/') ? healthPath : `/${healthPath}` };
  return { kind: fallback };
}

/** How a check reads in a message: `GET /healthz`, `any HTTP answer`, `TCP connect`. */
export function describeCheck(check: HealthCheck): string {
  if (check.kind === 'http') return `GET ${check.path}`;
  if (check.kind === 'http-any') return 'any HTTP answer';
  return 'TCP connect';
}

/** What an instance that answered no probe within its start timeout is told (pure). */
export interface UnhealthyFacts {
  /** Host port probed; undefined when none is known yet (a container not published yet). */
  port: number | undefined;
  timeoutMs: number;
  check: HealthCheck;
  /** A `command:` process (it could be listening elsewhere: its listening ports were read). */
  isProcess: boolean;
}

/** Why an instance is unhealthy after its start timeout, and the fix (pure). */
export function unhealthyDetail(facts: UnhealthyFacts): string {
  if (facts.port === undefined) return 'no host port yet';
  const listens = facts.isProcess ? ', and it listens on no TCP port' : '';
  return `no healthy answer on 127.0.0.1:${facts.port} within ${Math.round(facts.timeoutMs / 1000)} s (${describeCheck(facts.check)})${listens}: raise \`health: { timeout: … }\` if it starts slowly`;
}

/** One probe of 127.0.0.1:<port>; true when healthy. */
export function probe(port: number, check: HealthCheck, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  if (check.kind === 'tcp') return probeTcp(port, timeoutMs);
  const path = check.kind === 'http' ? check.path : '/';
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      resolve(check.kind === 'http-any' ? status > 0 : status >= 200 && status < 400);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

function probeTcp(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Options of {@link waitHealthy}. */
export interface WaitHealthyOptions {
  /** Give up after this long (ms); default 60 000. */
  timeoutMs?: number;
  /** Pause between probes (ms); default 200. */
  intervalMs?: number;
  /** Stops waiting early (answers false). */
  signal?: AbortSignal;
  /**
   * Called before each probe; answers the port to probe now, or undefined when there is none
   * yet (a container whose port is not published yet). Lets the port change between probes.
   */
  port: number | (() => number | undefined | Promise<number | undefined>);
}

/** Probes until healthy (true), or until timeout or abort (false). */
export async function waitHealthy(check: HealthCheck, opts: WaitHealthyOptions): Promise<boolean> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const intervalMs = opts.intervalMs ?? 200;
  const deadline = Date.now() + timeoutMs;
  while (!opts.signal?.aborted) {
    const port = typeof opts.port === 'number' ? opts.port : await opts.port();
    // The last probe before the deadline still gets a usable timeout: loopback answers fast,
    // but a 1 ms HTTP exchange would fail a healthy service.
    if (port !== undefined && (await probe(port, check, Math.min(PROBE_TIMEOUT_MS, Math.max(MIN_PROBE_TIMEOUT_MS, deadline - Date.now()))))) {
      return true;
    }
    if (Date.now() + intervalMs > deadline) return false;
    await sleep(intervalMs, opts.signal);
  }
  return false;
}

/** setTimeout as a promise that settles early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
