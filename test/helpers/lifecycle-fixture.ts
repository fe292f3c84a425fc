/**
 * The set-up `down` and `use` lifecycle files share: a real daemon on its own `$DEVPROXY_HOME`, a
 * stand-in DEV remote, a real git repository and its worktree `alpha` made by `devproxy new`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { runCli, type CliResult } from './cli.js';
import { createTempRepo, type TempRepo } from './git-repo.js';
import { getRouted, startHttpUpstream, type Upstream } from './upstreams.js';

export interface LifecycleFixture {
  home: string;
  repo: TempRepo;
  /** The DEV remote: answers `from DEV for <x-devproxy-worktree>`. */
  remote: Upstream;
  /** The daemon's plain HTTP port. */
  httpPort: number;
  /** The folder of worktree `alpha`. */
  alpha: string;
  /** Runs the CLI against this fixture's daemon, in the main checkout unless `cwd` says. */
  cli(args: string[], cwd?: string): Promise<CliResult>;
  /** A request for `host` through the daemon. */
  get(host: string): ReturnType<typeof getRouted>;
  /** Removes `alpha`, stops the daemon and the remote, and deletes the repository and the home. */
  close(): Promise<void>;
}

export interface LifecycleOptions {
  /** Prefix of the temporary `$DEVPROXY_HOME`. */
  homePrefix: string;
  /** Hostname of the DEV remote (a `*.localhost` name). */
  remoteHost: string;
  /** The repository's files, given the remote's URL. */
  files(remoteUrl: string): Record<string, string>;
  /** The profile `new feature/alpha` starts with. */
  profile: string;
  /** Per CLI run, in ms. */
  timeoutMs: number;
}

/** Starts the daemon and makes worktree `alpha` (`devproxy new feature/alpha --profile …`). */
export async function startLifecycle(options: LifecycleOptions): Promise<LifecycleFixture> {
  const home = await mkdtemp(join(tmpdir(), options.homePrefix));
  let remote: Upstream | undefined;
  let repo: TempRepo | undefined;
  let cli = (_args: string[], _cwd?: string): Promise<CliResult | undefined> => Promise.resolve(undefined);
  const close = async (): Promise<void> => {
    await cli(['rm', 'alpha', '--force']);
    await cli(['proxy', 'stop', '--all']);
    await remote?.close();
    if (repo !== undefined) {
      await repo.cleanup();
      await rm(`${repo.main}.worktrees`, { recursive: true, force: true });
    }
    await rm(home, { recursive: true, force: true });
  };
  try {
    const dev = await startHttpUpstream((req, res) => res.end(`from DEV for ${req.headers['x-devproxy-worktree'] ?? '?'}`));
    remote = dev;
    const made = await createTempRepo(options.files(`http://${options.remoteHost}:${dev.port}`));
    repo = made;
    // Local ports come from this worker's own range (DEVPROXY_LOCAL_PORTS, test/setup/worker-ports.ts).
    const env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
    const run = (args: string[], cwd = made.main): Promise<CliResult> => runCli(args, { cwd, env, timeoutMs: options.timeoutMs });
    cli = run;
    const started = await run(['proxy', 'start', '--json']);
    expect(started.code, started.stderr).toBe(0);
    const httpPort = (JSON.parse(started.stdout) as { httpPort: number }).httpPort;
    const created = await run(['new', 'feature/alpha', '--profile', options.profile]);
    expect(created.code, created.stderr + created.stdout).toBe(0);
    return { home, repo: made, remote: dev, httpPort, alpha: join(`${made.main}.worktrees`, 'alpha'), cli: run, get: (host) => getRouted(httpPort, host), close };
  } catch (error) {
    // A daemon that started must not outlive a failed set-up.
    await close();
    throw error;
  }
}
