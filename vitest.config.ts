import { configDefaults, defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Test files run side by side: integration time is mostly waiting on spawned daemons, git,
 * Docker and browsers, so three workers keep 2 cores busy. What files share is isolated per
 * file (a temp $DEVPROXY_HOME, port 0, their own compose project names and hosts files) or per
 * worker (the local-port range, test/setup/worker-ports.ts). Files that cannot share the machine
 * run in later groups, after everything else has finished.
 */
const WORKERS = 3;

/**
 * Two at a time once no Docker test runs: the browsers, because Chromium drops a page load with
 * ERR_NETWORK_CHANGED when a compose network comes or goes on the machine, and runtime-processes,
 * which asserts ports of the default local range: the other files' daemons avoid that range, but
 * runtime-compose's host-network test allocates from it too.
 */
const WITHOUT_DOCKER = [
  'test/integration/browser-cors-flip.test.ts',
  'test/integration/browser-https.test.ts',
  'test/integration/dashboard-admin-token.test.ts',
  'test/integration/real-apps-browser.test.ts',
  'test/integration/runtime-processes.test.ts',
];

/**
 * One at a time, last: tests that assert latencies or count attempts within a time bound (the
 * floods' victim p99, parse p99, flip and race budgets, wake attempts, drain and header
 * deadlines, an idle or slowloris client cut within 10× the header timeout, the dashboard's
 * request within 1 s and its push within 250 ms, a keep-alive request inside a 500 ms timeout),
 * and the engine restart, which stops the real dockerd (CI only).
 */
const ALONE = [
  'test/reliability/h2-floods.test.ts',
  'test/reliability/daemon-faults.test.ts',
  'test/reliability/committed-files.test.ts',
  'test/reliability/hostile-input.test.ts',
  'test/reliability/https-drain.test.ts',
  'test/reliability/shutdown-drain.test.ts',
  'test/integration/remote-wake.test.ts',
  'test/integration/dashboard-browser.test.ts',
  'test/integration/dashboard-feed.test.ts',
  'test/integration/h1-front-keep-alive.test.ts',
  'test/integration/runtime-engine-restart.test.ts',
];

/**
 * The files that take 30 s or more (a 2-core run: testssl.sh's scan, Docker start-ups, the CLI's
 * 15 s admin timeout), longest first. Without vitest's results cache (a clean clone, as in CI)
 * files start largest first, and a small file that runs for a minute, started last, kept one
 * worker busy for a minute after the others had run out of files.
 */
const LONGEST_FIRST = [
  'test/integration/testssl.test.ts',
  'test/reliability/daemon-errors.test.ts',
  'test/integration/runtime-compose.test.ts',
  'test/integration/worktree-lifecycle.test.ts',
  'test/integration/package-install.test.ts',
  'test/integration/down-lifecycle.test.ts',
  'test/integration/json-schemas.test.ts',
  'test/integration/worktree-setup.test.ts',
  'test/integration/stop-networks.test.ts',
  'test/reliability/home-modes.test.ts',
  'test/integration/use-lifecycle.test.ts',
  'test/integration/real-apps-browser.test.ts',
];

/**
 * vitest's order (groups, then projects, then by the cached durations or else file size), with
 * the {@link LONGEST_FIRST} files moved to the front of their project: a group ends when its last
 * file does, so the long ones must not start last.
 */
class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const position = new Map(sorted.map((spec, i) => [spec, i]));
    const rank = (spec: TestSpecification): number => {
      const i = LONGEST_FIRST.findIndex((file) => spec.moduleId.endsWith(`/${file}`));
      return i === -1 ? LONGEST_FIRST.length : i;
    };
    return sorted.sort((a, b) => {
      if (a.project !== b.project) return position.get(a)! - position.get(b)!;
      return rank(a) - rank(b) || position.get(a)! - position.get(b)!;
    });
  }
}

/** The integration projects: they run the real CLI/daemon/demo from dist/, so they emit product + demo first. */
function integration(name: string, include: string[], group: { order: number; workers: number; exclude?: string[] }): TestProjectInlineConfiguration {
  return {
    extends: true,
    test: {
      name,
      include,
      exclude: [...configDefaults.exclude, ...(group.exclude ?? [])],
      globalSetup: ['test/setup/build.ts'],
      setupFiles: ['test/setup/worker-ports.ts'],
      maxWorkers: group.workers,
      sequence: { groupOrder: group.order },
    },
  };
}

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    maxWorkers: WORKERS,
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      // Pure logic, imported as TypeScript: nothing is compiled first.
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      // Type errors in tests, bench and demo are caught by `npm test`'s typecheck step.
      integration('integration', ['test/**/*.test.ts'], { order: 0, workers: WORKERS, exclude: ['test/unit/**', ...WITHOUT_DOCKER, ...ALONE] }),
      integration('integration-without-docker', WITHOUT_DOCKER, { order: 1, workers: 2 }),
      integration('integration-alone', ALONE, { order: 2, workers: 1 }),
    ],
  },
});
