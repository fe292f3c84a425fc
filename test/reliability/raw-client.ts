/**
 * Raw TCP clients for hostile-input and fault tests: what goes on the wire is exactly what the
 * test wrote (node:http would normalise smuggling shapes away), and every wait is bounded.
 */
import { connect, type Socket } from 'node:net';

/** How a raw exchange ended. */
export interface RawOutcome {
  /** Every byte received. */
  data: string;
  /** `end`: the server closed cleanly; `error`: reset or other socket error; `timeout`: neither within the bound. */
  how: 'end' | 'error' | 'timeout';
  error?: string;
}

/** Writes `payload` to 127.0.0.1:`port`, then collects bytes until the server closes or `timeoutMs`. */
export function rawExchange(port: number, payload: string | Buffer, timeoutMs = 3_000): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (how: RawOutcome['how'], error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks).toString('latin1'), how, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => finish('end'));
    socket.on('close', () => finish('end'));
    socket.on('error', (e: NodeJS.ErrnoException) => finish('error', e.code ?? e.message));
    socket.write(payload);
  });
}

/** Status codes of every HTTP/1.1 response head in `data`, in order. */
export function statusCodes(data: string): number[] {
  return [...data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/** Opens a raw socket and resolves once connected. */
export function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Rejects after `ms` with `what`, so no test can hang on a socket. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]);
}
