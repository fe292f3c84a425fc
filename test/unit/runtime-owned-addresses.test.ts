import { describe, expect, it } from 'vitest';
import { containerAddresses, OwnedAddresses } from '../../runtime/owned-addresses.js';

/** An engine stand-in for the cache's bookkeeping: snapshots answered from `running`, each counted. */
function engine(running: Map<string, string>) {
  const state = { running, snapshots: 0, feed: 1 as number | undefined, hold: undefined as Promise<void> | undefined };
  const owned = new OwnedAddresses({
    snapshot: async () => {
      state.snapshots++;
      const taken = new Map(state.running);
      await state.hold;
      return taken;
    },
    eventFeed: () => state.feed,
    minRefreshIntervalMs: 20,
    lookupTimeoutMs: 2_000,
  });
  return { state, owned };
}

describe('containerAddresses: a container’s addresses from its inspect', () => {
  it('lists every network’s IPv4 and IPv6 address of a running or starting container, none of a stopped one', () => {
    const inspect = {
      State: { Running: true },
      NetworkSettings: {
        Networks: {
          bridge: { IPAddress: '172.17.0.3', GlobalIPv6Address: '' },
          proj_default: { IPAddress: '172.24.0.2', GlobalIPv6Address: 'fd00::2' },
          none: null,
          host: { IPAddress: null },
        },
      },
    };
    expect(containerAddresses(inspect)).toEqual(['172.17.0.3', '172.24.0.2', 'fd00::2']);
    expect(containerAddresses({ ...inspect, State: { Running: false, Status: 'exited' } })).toEqual([]);
    // Networks are connected before the engine records `running`; its process may call in between.
    expect(containerAddresses({ ...inspect, State: { Running: false, Status: 'created' } })).toEqual(['172.17.0.3', '172.24.0.2', 'fd00::2']);
    expect(containerAddresses({ ...inspect, State: { Running: false, Status: 'restarting' } })).toEqual(['172.17.0.3', '172.24.0.2', 'fd00::2']);
    expect(containerAddresses({ State: { Running: true }, NetworkSettings: { Networks: null } })).toEqual([]);
    expect(containerAddresses({})).toEqual([]);
  });
});

describe('OwnedAddresses: current answers, a bounded cost to the engine', () => {
  it('asks the engine on a miss before deciding (a container that just started), then answers from the cache', async () => {
    const { state, owned } = engine(new Map([['172.17.0.2', 'a']]));
    expect(await owned.isOwned('172.17.0.2')).toBe(true);
    expect(state.snapshots).toBe(1);
    expect(owned.isOwned('172.17.0.2')).toBe(true);
    state.running.set('172.17.0.3', 'b');
    expect(await owned.isOwned('172.17.0.3')).toBe(true);
    expect(await owned.isOwned('172.17.0.9')).toBe(false);
    expect(state.snapshots).toBe(3);
  });

  it('forgets a container that died, so its address given to another container is not lent', async () => {
    const { state, owned } = engine(new Map([['172.17.0.2', 'a']]));
    expect(await owned.isOwned('172.17.0.2')).toBe(true);
    owned.forget('a');
    state.running.delete('172.17.0.2');
    expect(await owned.isOwned('172.17.0.2')).toBe(false);
  });

  it('drops what a snapshot under way still lists of a container that died meanwhile', async () => {
    const { state, owned } = engine(new Map([['172.17.0.2', 'a']]));
    let release!: () => void;
    state.hold = new Promise((resolve) => (release = resolve));
    const asked = owned.isOwned('172.17.0.2');
    await new Promise((resolve) => setImmediate(resolve));
    expect(state.snapshots).toBe(1);
    owned.forget('a');
    release();
    expect(await asked).toBe(false);
  });

  it('trusts the cache only while the event feed it was read under is open', async () => {
    const { state, owned } = engine(new Map([['172.17.0.2', 'a']]));
    expect(await owned.isOwned('172.17.0.2')).toBe(true);
    state.feed = 2;
    state.running.clear();
    const after = owned.isOwned('172.17.0.2');
    expect(after).toBeInstanceOf(Promise);
    expect(await after).toBe(false);
    state.feed = undefined;
    state.running.set('172.17.0.2', 'c');
    expect(owned.isOwned('172.17.0.2')).toBeInstanceOf(Promise);
  });

  it('shares one snapshot between the misses asked while one runs, and queues at most one more', async () => {
    const { state, owned } = engine(new Map([['172.17.0.2', 'a']]));
    let release!: () => void;
    state.hold = new Promise((resolve) => (release = resolve));
    const first = owned.isOwned('172.17.0.50');
    await new Promise((resolve) => setImmediate(resolve));
    const flood = Array.from({ length: 200 }, (_, i) => owned.isOwned(`172.24.0.${i}`));
    release();
    expect(await first).toBe(false);
    expect((await Promise.all(flood)).every((lend) => lend === false)).toBe(true);
    expect(state.snapshots).toBe(2);
  });

  it('lends nothing when the engine fails or does not answer in time', async () => {
    const failing = new OwnedAddresses({ snapshot: () => Promise.reject(new Error('engine gone')), eventFeed: () => 1 });
    expect(await failing.isOwned('172.17.0.2')).toBe(false);
    const silent = new OwnedAddresses({ snapshot: () => new Promise(() => undefined), eventFeed: () => 1, lookupTimeoutMs: 50 });
    expect(await silent.isOwned('172.17.0.2')).toBe(false);
  });
});
