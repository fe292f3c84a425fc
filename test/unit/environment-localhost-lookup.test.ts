import dns from 'node:dns';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { installLocalhostLookup, loopbackAddresses } from '../../environment/localhost-lookup.js';

/** A dns module of our own with the real lookup functions, so the test process's dns stays unpatched. */
function patchedDns(): typeof dns {
  const copy = { ...dns, promises: { ...dns.promises } } as typeof dns;
  installLocalhostLookup(copy);
  return copy;
}

describe('loopbackAddresses', () => {
  it('answers IPv4 first, or the one family asked for', () => {
    expect(loopbackAddresses(undefined)).toEqual([{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }]);
    expect(loopbackAddresses(0)).toHaveLength(2);
    expect(loopbackAddresses(4)).toEqual([{ address: '127.0.0.1', family: 4 }]);
    expect(loopbackAddresses('IPv6')).toEqual([{ address: '::1', family: 6 }]);
  });
});

describe('installLocalhostLookup', () => {
  it('answers *.localhost in every calling convention of dns.lookup', async () => {
    const patched = patchedDns();
    const call = (...args: unknown[]) =>
      new Promise<unknown[]>((resolve) => (patched.lookup as (...a: unknown[]) => void)(...args, (...result: unknown[]) => resolve(result)));
    expect(await call('api.feature-x.localhost')).toEqual([null, '127.0.0.1', 4]);
    expect(await call('api.feature-x.localhost', 6)).toEqual([null, '::1', 6]);
    expect(await call('api.feature-x.localhost', { family: 4, all: true })).toEqual([null, [{ address: '127.0.0.1', family: 4 }]]);
    expect(await call('api.feature-x.localhost', { all: true })).toEqual([null, loopbackAddresses(0)]);
  });

  it('never calls back synchronously', () => {
    const patched = patchedDns();
    let called = false;
    patched.lookup('a.localhost', () => {
      called = true;
    });
    expect(called).toBe(false);
  });

  it('patches the promise API and keeps util.promisify working', async () => {
    const patched = patchedDns();
    expect(await patched.promises.lookup('ui.x.localhost')).toEqual({ address: '127.0.0.1', family: 4 });
    expect(await patched.promises.lookup('ui.x.localhost', { all: true, family: 6 })).toEqual([{ address: '::1', family: 6 }]);
    expect(await promisify(patched.lookup)('ui.x.localhost')).toEqual({ address: '127.0.0.1', family: 4 });
  });

  it('passes other names to the original functions, with their arguments', async () => {
    // The originals are stand-ins: a real lookup of a name would depend on this machine's resolver.
    const seen: unknown[][] = [];
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    const copy = {
      ...dns,
      lookup: (...args: unknown[]) => {
        seen.push(args.slice(0, -1));
        (args.at(-1) as (error: Error) => void)(notFound);
      },
      promises: {
        ...dns.promises,
        lookup: async (...args: unknown[]) => {
          seen.push(args);
          return { address: '192.0.2.7', family: 4 };
        },
      },
    } as unknown as typeof dns;
    installLocalhostLookup(copy);
    const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => copy.lookup('devproxy-test.invalid', { family: 4 }, (e) => resolve(e)));
    expect(error).toBe(notFound);
    expect(await copy.promises.lookup('example.test', { all: false })).toEqual({ address: '192.0.2.7', family: 4 });
    expect(seen).toEqual([
      ['devproxy-test.invalid', { family: 4 }],
      ['example.test', { all: false }],
    ]);
  });
});
