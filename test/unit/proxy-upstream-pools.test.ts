import { Pool } from 'undici';
import { describe, expect, it } from 'vitest';
import { DEFAULT_UPSTREAM_TIMEOUTS, UpstreamPools } from '../../proxy/upstream-pools.js';

describe('upstream pools', () => {
  it("are undici's own Pool, loaded from its module rather than undici's index", async () => {
    const pools = new UpstreamPools(DEFAULT_UPSTREAM_TIMEOUTS);
    const pool = pools.poolFor({ kind: 'local', origin: 'http://127.0.0.1:9', port: 9 });
    expect(pool).toBeInstanceOf(Pool);
    expect(pools.poolFor({ kind: 'local', origin: 'http://127.0.0.1:9', port: 9 })).toBe(pool);
    await pools.close();
  });
});
