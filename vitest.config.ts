import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/build.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration suites start real daemons, Docker containers and git repos; files in parallel
    // would fight over the 2 cores of CI and turn timing-sensitive flips into noise.
    fileParallelism: false,
  },
});
