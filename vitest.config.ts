import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each test file starts real servers with real databases and ffmpeg; give them room on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Vitest's default leaves one core free, which on a 2-core machine runs the files one at a time. They
    // spend much of their time waiting on servers, ffmpeg and Chromium: two at a time nearly halve the run.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    // TEST_STORAGE=s3: one s3rver for the run, which every service the kit starts stores its audio in.
    globalSetup: ['test/kit/s3-global-setup.ts'],
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      // Services started as child processes (crash, shutdown, check-storage tests) are not measured.
      reporter: ['text', 'json-summary'],
      reportsDirectory: 'coverage',
    },
  },
});
