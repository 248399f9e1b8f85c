import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

/**
 * Runs the benchmark at tiny sizes so that it cannot rot: it must build, start the service, run every
 * measurement and write its table. Times are not asserted: CI machines are too noisy for that.
 */
it('runs npm run bench --smoke to the end and writes the table', { timeout: 150_000 }, async () => {
  const out = join(root, 'bench', '.work', `smoke-test-${process.pid}.md`);
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'bench/run.ts', '--smoke', '--no-presets', '--out', out],
      { cwd: root, env: { ...process.env, DATABASE_URL: process.env.TEST_BENCH_DATABASE_URL ?? '' } },
    );
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.once('error', reject);
    child.once('close', (exitCode) => resolve({ code: exitCode, output: text }));
  });
  expect(code, output).toBe(0);
  const report = await readFile(out, 'utf8');
  await rm(out, { force: true });
  expect(report).toContain('## Machine');
  expect(report).toContain('| # | measurement | service | baseline | result | target | met |');
  for (const row of [1, 2, 3, 4, 5, 6, 7, 8]) expect(report).toMatch(new RegExp(`^\\| ${row} \\| `, 'm'));
});
