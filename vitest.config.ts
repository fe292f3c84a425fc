import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Integration files that cannot share the machine with others and run one at a time, after
 * everything else: the engine restart stops the real dockerd (CI only) under every container,
 * and runtime-processes asserts ports from the default local range (41000-48999), which the other
 * files' daemons avoid (test/setup/worker-ports.ts) but runtime-compose's host-network test uses.
 */
const ALONE = ['test/integration/runtime-engine-restart.test.ts', 'test/integration/runtime-processes.test.ts'];

/**
 * Test files run side by side: integration time is mostly waiting on spawned daemons, git,
 * Docker and browsers, so three workers keep 2 cores busy. What files share is isolated per
 * file (temp $DEVPROXY_HOME, port 0, own compose project names, own local-port range per worker).
 */
const WORKERS = 3;

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    maxWorkers: WORKERS,
    projects: [
      // Pure logic, imported as TypeScript: nothing is compiled first.
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      // Everything else runs the real CLI/daemon/demo from dist/, so it emits product + demo first.
      // Type errors in tests, bench and demo are caught by `npm test`'s typecheck step.
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/unit/**', ...ALONE],
          globalSetup: ['test/setup/build.ts'],
          setupFiles: ['test/setup/worker-ports.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration-alone',
          include: ALONE,
          globalSetup: ['test/setup/build.ts'],
          setupFiles: ['test/setup/worker-ports.ts'],
          fileParallelism: false,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
