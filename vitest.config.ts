import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration suites start real daemons, Docker containers and git repos; files in parallel
    // would fight over the 2 cores of CI and turn timing-sensitive flips into noise.
    fileParallelism: false,
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
          exclude: [...configDefaults.exclude, 'test/unit/**'],
          globalSetup: ['test/setup/build.ts'],
        },
      },
    ],
  },
});
