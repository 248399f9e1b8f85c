import { availableParallelism } from 'node:os';
import { configDefaults, defineConfig } from 'vitest/config';

const BROWSER_TESTS = 'test/browser/**/*.test.ts';

export default defineConfig({
  test: {
    // Each test file starts real servers with real databases and ffmpeg; give them room on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // TEST_STORAGE=s3: one s3rver for the run, which every service the kit starts stores its audio in.
    globalSetup: ['test/kit/s3-global-setup.ts'],
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      // Services started as child processes (crash, shutdown, check-storage tests) are not measured.
      reporter: ['text', 'json-summary'],
      reportsDirectory: 'coverage',
    },
    projects: [
      {
        extends: true,
        test: {
          name: 'service',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, BROWSER_TESTS],
          // Vitest's default leaves one core free, which on a 2-core machine runs the files one at a time.
          // They spend much of their time waiting on servers and ffmpeg: two at a time nearly halve the run.
          maxWorkers: Math.max(2, availableParallelism() - 1),
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: [BROWSER_TESTS],
          // Chromium's players and timers are judged in real time: these run after the rest, one at a time.
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
