import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { H1Pool } from '../../proxy/h1-upstream.js';
import { DEFAULT_UPSTREAM_TIMEOUTS, UpstreamPools } from '../../proxy/upstream-pools.js';
import { local, remote } from '../helpers/routes.js';

const require = createRequire(import.meta.url);
/** undici's Pool module: in the require cache once anything loaded it (undici has no ESM build). */
const UNDICI_POOL_MODULE = require.resolve('undici/lib/dispatcher/pool.js');

describe('upstream pools', () => {
  it("serve local origins with devproxy's own client, and load undici only for the first remote, as its own Pool module", async () => {
    const pools = new UpstreamPools(DEFAULT_UPSTREAM_TIMEOUTS);
    const pool = pools.poolFor(local(9));
    expect(pool).toBeInstanceOf(H1Pool);
    expect(pools.poolFor(local(9))).toBe(pool);
    expect(require.cache[UNDICI_POOL_MODULE]).toBeUndefined();

    const remotePool = pools.poolFor(remote({ origin: 'https://127.0.0.1:9', hostname: 'api-dev.test-remote.localhost', insecure: true }));
    expect(require.cache[UNDICI_POOL_MODULE]).toBeDefined();
    // Loaded from its module, it is still the class undici's index exports.
    const { Pool } = await import('undici');
    expect(remotePool).toBeInstanceOf(Pool);
    await pools.close();
  });
});
