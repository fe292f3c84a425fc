import type * as Dns from 'node:dns';
import { promisify } from 'node:util';
import { isLocalhostName } from '../hostname.js';

/** One address as `dns.lookup(…, { all: true })` answers it. */
export interface LoopbackAddress {
  address: string;
  family: 4 | 6;
}

/**
 * The loopback answer for a lookup with these options: IPv4 first, since the proxy always
 * listens on 127.0.0.1 while ::1 is only bound by default; `family` narrows it to one.
 */
export function loopbackAddresses(family: unknown): LoopbackAddress[] {
  const v4: LoopbackAddress = { address: '127.0.0.1', family: 4 };
  const v6: LoopbackAddress = { address: '::1', family: 6 };
  if (family === 4 || family === 'IPv4') return [v4];
  if (family === 6 || family === 'IPv6') return [v6];
  return [v4, v6];
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LoopbackAddress[], family?: number) => void;

/**
 * Makes `dns.lookup` and `dns.promises.lookup` answer loopback for `localhost`/`*.localhost`
 * on every OS. glibc does on Linux only with nss-myhostname, macOS and Windows resolvers do not,
 * and `net` (thus `http.request` and undici's `fetch`) asks `dns.lookup`. Other names go to
 * the original functions untouched.
 */
export function installLocalhostLookup(dns: typeof Dns): void {
  const original = dns.lookup;
  const originalPromise = dns.promises.lookup;
  const lookup = function lookup(hostname: string, options: unknown, callback?: LookupCallback): void {
    if (typeof options === 'function') {
      callback = options as LookupCallback;
      options = undefined;
    }
    if (typeof hostname !== 'string' || !isLocalhostName(hostname)) {
      (original as (...args: unknown[]) => void).call(dns, hostname, options, callback);
      return;
    }
    const opts = (typeof options === 'number' ? { family: options } : (options ?? {})) as { family?: unknown; all?: boolean };
    const answer = loopbackAddresses(opts.family);
    // dns.lookup never calls back synchronously; callers rely on that ordering.
    process.nextTick(() => (opts.all ? callback!(null, answer) : callback!(null, answer[0]!.address, answer[0]!.family)));
  };
  Object.defineProperty(lookup, promisify.custom, { value: (hostname: string, options?: unknown) => dns.promises.lookup(hostname, options as Dns.LookupOptions) });
  dns.lookup = lookup as typeof dns.lookup;
  dns.promises.lookup = (async (hostname: string, options?: unknown) => {
    if (typeof hostname !== 'string' || !isLocalhostName(hostname)) return (originalPromise as (...args: unknown[]) => Promise<unknown>).call(dns.promises, hostname, options);
    const opts = (typeof options === 'number' ? { family: options } : (options ?? {})) as { family?: unknown; all?: boolean };
    const answer = loopbackAddresses(opts.family);
    return opts.all ? answer : answer[0]!;
  }) as typeof dns.promises.lookup;
}
