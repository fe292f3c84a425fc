import { describe, expect, it } from 'vitest';
import { reachablePackages, staticPackages } from '../helpers/static-imports.js';

/**
 * Packages whose import the daemon's memory budget cannot pay at start (measured one at a time,
 * README "Performance" → "Memory"): each is loaded only where it is needed, or not by the daemon.
 * - `undici`: its index also loads fetch, WebSocket, caches and mocks; the proxy loads Pool's own module,
 *   and only for the first remote route (local upstreams go through `proxy/h1-upstream.ts`).
 * - `simple-git`: the daemon reads the worktree list with one `git` call; the CLI's `new`/`rm` keep it.
 * - `@peculiar/x509`: only in the worker process that mints a CA or leaf; `@azure/identity`: only for
 *   a remote with Entra ID auth.
 */
const NOT_AT_DAEMON_START = ['undici', 'simple-git', '@peculiar/x509', '@azure/identity'];

/**
 * Packages the daemon never loads, not even lazily: dockerode (with docker-modem and ssh2, ~10 MiB
 * resident) is replaced by runtime/docker-engine-api.ts, and Docker answers in every daemon;
 * fastify (~7 MiB at start) by the admin API's own router on node's `http` (daemon/admin-router.ts);
 * chokidar (one watcher object per worktree, and throttling that dropped quick replacements) by
 * `fs.watch` on directories (workspace/dir-watch.ts).
 */
const NEVER_IN_DAEMON = ['dockerode', 'docker-modem', 'fastify', 'chokidar'];

/** The minting code: the daemon runs it in a short-lived worker process (`certs/mint-worker-client.ts`). */
const ONLY_IN_THE_MINT_WORKER = ['@peculiar/x509', 'reflect-metadata'];

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

describe('what the daemon ever loads', () => {
  it('never reaches the packages it does without, through any import, lazy ones included', () => {
    const reached = [...reachablePackages('daemon/main.ts')].filter((p) => NEVER_IN_DAEMON.includes(p));
    expect(reached).toEqual([]);
  });

  it('reaches the minting code through no import in its main thread, lazy ones included', () => {
    const reached = [...reachablePackages('daemon/main.ts')].filter((p) => ONLY_IN_THE_MINT_WORKER.includes(p));
    expect(reached).toEqual([]);
  });

  it('follows lazy imports (so the checks above can fail)', () => {
    expect(reachablePackages('daemon/main.ts')).toContain('@azure/identity');
    expect([...reachablePackages('test/setup/docker-engine.ts')]).toContain('dockerode');
    expect([...reachablePackages('certs/mint-worker.ts')]).toEqual(expect.arrayContaining(ONLY_IN_THE_MINT_WORKER));
    expect([...reachablePackages('certs/in-process-minter.ts')]).toEqual(expect.arrayContaining(ONLY_IN_THE_MINT_WORKER));
    expect([...staticPackages('certs/in-process-minter.ts')]).toEqual([]);
  });
});
