import { describe, expect, it } from 'vitest';
import { staticPackages } from '../helpers/static-imports.js';

/**
 * Packages whose import the daemon's memory budget cannot pay at start (measured one at a time,
 * README "Performance" → "Memory"): each is loaded only where it is needed, or not by the daemon.
 * - `undici`: its index also loads fetch, WebSocket, caches and mocks; the proxy loads Pool's own module.
 * - `simple-git`: the daemon reads the worktree list with one `git` call; the CLI's `new`/`rm` keep it.
 * - `@peculiar/x509`: only when a CA or leaf must be minted; `dockerode`: only when Docker is asked;
 *   `@azure/identity`: only for a remote with Entra ID auth.
 */
const NOT_AT_DAEMON_START = ['undici', 'simple-git', '@peculiar/x509', 'dockerode', '@azure/identity'];

describe('what the daemon loads at start', () => {
  it('reaches none of the packages it loads lazily through a static import', () => {
    const reached = [...staticPackages('daemon/main.ts')].filter((p) => NOT_AT_DAEMON_START.includes(p));
    expect(reached).toEqual([]);
  });

  it('still sees those packages where they are imported statically (so the check above can fail)', () => {
    expect([...staticPackages('worktrees/feature-worktree.ts')]).toContain('simple-git');
    expect([...staticPackages('certs/authority.ts')]).toContain('@peculiar/x509');
  });
});
