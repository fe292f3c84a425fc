/**
 * WebSocket echo throughput: one connection keeps a window of small messages in flight and counts
 * echoes per second, bounded in count and time.
 */
import WebSocket from 'ws';

/** Messages in flight at once. */
const WINDOW = 64;
/** Payload of each message. */
const PAYLOAD = Buffer.alloc(64, 'm');

/** Echo throughput of one run. */
export interface WsResult {
  messages: number;
  seconds: number;
  perSecond: number;
}

/** Echoes up to `maxMessages` (or for `maxMs`) through ws://127.0.0.1:port with `Host: host`. */
export function measureWsEcho(port: number, host: string | undefined, maxMessages: number, maxMs: number): Promise<WsResult> {
  return new Promise((resolve, reject) => {
    const headers = host ? { host } : undefined;
    const socket = new WebSocket(`ws://127.0.0.1:${port}/`, { headers, perMessageDeflate: false });
    let sent = 0;
    let received = 0;
    let started = 0;
    const finish = (): void => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      socket.terminate();
      resolve({ messages: received, seconds, perSecond: received / seconds });
    };
    const timer = setTimeout(() => {
      if (started === 0) {
        socket.terminate();
        reject(new Error(`WebSocket to ${host ?? port} did not open`));
      } else finish();
    }, maxMs);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      socket.terminate();
      reject(new Error(`WebSocket upgrade to ${host ?? port} answered ${res.statusCode}`));
    });
    socket.on('open', () => {
      started = performance.now();
      for (; sent < WINDOW && sent < maxMessages; sent++) socket.send(PAYLOAD);
    });
    socket.on('message', () => {
      received++;
      if (received >= maxMessages) finish();
      else if (sent < maxMessages) {
        sent++;
        socket.send(PAYLOAD);
      }
    });
  });
}
