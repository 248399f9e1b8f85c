import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

/** The cells of a numbered row of the results table: measurement, service, baseline, result, target, met. */
function tableRows(report: string): Map<number, string[]> {
  const rows = new Map<number, string[]>();
  for (const line of report.split('\n')) {
    const match = /^\| (\d+) \| (.*) \|$/.exec(line);
    if (match !== null) rows.set(Number(match[1]), (match[2] ?? '').split(' | '));
  }
  return rows;
}

/** The numbers `pattern` captures in `cell`, each checked to be a finite number. */
function numbersIn(cell: string | undefined, pattern: RegExp): number[] {
  const match = pattern.exec(cell ?? '');
  expect(match, `${String(pattern)} in "${cell}"`).not.toBeNull();
  const numbers = (match ?? []).slice(1).map(Number);
  for (const number of numbers) expect(Number.isFinite(number), `${number} in "${cell}"`).toBe(true);
  return numbers;
}

/**
 * Runs the benchmark at tiny sizes so that it cannot rot: it must build, start the service, run every
 * measurement and write its table, with a real number wherever a figure goes. The figures' sizes are
 * not judged against the targets: CI machines are too noisy for that.
 */
it('runs npm run bench --smoke to the end and writes a table of real measurements', { timeout: 150_000 }, async () => {
  const out = join(root, 'bench', '.work', `smoke-test-${process.pid}.md`);
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  const databaseUrl = process.env.TEST_BENCH_DATABASE_URL;
  if (databaseUrl !== undefined && databaseUrl !== '') env.DATABASE_URL = databaseUrl;
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'bench/run.ts', '--smoke', '--no-presets', '--out', out],
      { cwd: root, env },
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
  // The database the service really ran on.
  expect(report).toContain(
    `- database: ${env.DATABASE_URL === undefined ? 'PGlite (embedded)' : 'PostgreSQL (DATABASE_URL)'}\n`,
  );
  expect(report).toContain('| # | measurement | service | baseline | result | target | met |');
  const rows = tableRows(report);
  // 1–8: issue 3's rows; 9–23: issue 10's (input kinds, peaks, the 1 GiB FLAC).
  expect([...rows.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 23 }, (_, index) => index + 1));
  for (const [id, cells] of rows) {
    expect(cells, `row ${id}`).toHaveLength(6);
    expect(cells.join(' '), `row ${id}`).not.toMatch(/NaN|Infinity|undefined|null/);
    expect(['yes', '**no**', 'recorded'], `row ${id}`).toContain(cells[5]);
  }
  const cell = (id: number, column: 'service' | 'baseline' | 'result') =>
    rows.get(id)?.[{ service: 1, baseline: 2, result: 3 }[column]];

  // 1: the service's and bare ffmpeg's times, and their ratio.
  const [upload = 0] = numbersIn(cell(1, 'service'), /^(\d+\.\d\d) s$/);
  const [bare = 0] = numbersIn(cell(1, 'baseline'), /^(\d+\.\d\d) s bare ffmpeg$/);
  const [ratio = 0] = numbersIn(cell(1, 'result'), /^×(\d+\.\d{3})$/);
  expect(upload).toBeGreaterThan(0);
  expect(bare).toBeGreaterThan(0);
  expect(Math.abs(ratio - upload / bare)).toBeLessThan(0.05 * ratio + 0.05);
  // 2: the lag after the last byte (may round to 0) within the whole throttled request.
  const [lag = -1] = numbersIn(cell(2, 'service'), /^(\d+\.\d\d) s$/);
  const [lagAgain, whole = 0] = numbersIn(cell(2, 'result'), /^(\d+\.\d\d) s \(whole request (\d+\.\d\d) s\)$/);
  expect(lag).toBeGreaterThanOrEqual(0);
  expect(lagAgain).toBe(lag);
  expect(whole).toBeGreaterThanOrEqual(lag);
  expect(whole).toBeGreaterThan(0);
  // 3: memory while a big upload streams.
  const [, idle = 0] = numbersIn(cell(3, 'service'), /^(-?\d+\.\d) MiB over (\d+\.\d) MiB idle$/);
  const [, peak = 0, samples = 0, took = 0] = numbersIn(
    cell(3, 'result'),
    /^[+]?(-?\d+\.\d) MiB \(peak (\d+\.\d) MiB, (\d+) samples, upload took (\d+\.\d\d) s\)$/,
  );
  expect(idle).toBeGreaterThan(0);
  expect(peak).toBeGreaterThan(0);
  expect(samples).toBeGreaterThan(0);
  expect(took).toBeGreaterThan(0);
  // 4: concurrent uploads against bare ffmpeg.
  expect(numbersIn(cell(4, 'service'), /^(\d+\.\d\d) s$/)[0]).toBeGreaterThan(0);
  const [bareConcurrent = 0, slots = 0] = numbersIn(
    cell(4, 'baseline'),
    /^(\d+\.\d\d) s bare ffmpeg, (\d+) at a time$/,
  );
  expect(bareConcurrent).toBeGreaterThan(0);
  expect(slots).toBeGreaterThan(0);
  expect(numbersIn(cell(4, 'result'), /^×(\d+\.\d{3})$/)[0]).toBeGreaterThan(0);
  // 5: latency samples, loaded and idle.
  for (const [column, prefix] of [
    ['service', ''],
    ['baseline', 'idle: '],
  ] as const) {
    const [p99 = 0, p50 = 0, count = 0] = numbersIn(
      cell(5, column),
      new RegExp(`^${prefix}p99 (\\d+\\.\\d) ms, p50 (\\d+\\.\\d) ms \\(n=(\\d+)\\)$`),
    );
    expect(count).toBeGreaterThan(0);
    expect(p50).toBeGreaterThan(0);
    expect(p99).toBeGreaterThanOrEqual(p50);
  }
  // 6: requests per second, all of them answered 200.
  const [rate = 0] = numbersIn(cell(6, 'service'), /^(\d+) req\/s, p99 (\d+) ms$/);
  expect(rate).toBeGreaterThan(0);
  expect(numbersIn(cell(6, 'result'), /\(200×(\d+)\)$/)[0]).toBeGreaterThan(0);
  // 7: downloads, whole and ranged.
  const [, wholeRate = 0, , rangeRate = 0] = numbersIn(
    cell(7, 'service'),
    /^(\d+) MB\/s \((\d+\.\d) req\/s\); ranges: (\d+) MB\/s \((\d+) req\/s\)$/,
  );
  expect(wholeRate).toBeGreaterThan(0);
  expect(rangeRate).toBeGreaterThan(0);
  const [wholes = 0, ranges = 0] = numbersIn(cell(7, 'result'), /^200×(\d+); ranges 206×(\d+)$/);
  expect(wholes).toBeGreaterThan(0);
  expect(ranges).toBeGreaterThan(0);
  // 8: 50 uploads against a capacity of 6: every one accounted for, the refused ones counted in the result.
  const [accepted = 0, refused = 0, other = 0] = numbersIn(cell(8, 'service'), /^200×(\d+), 503×(\d+), other×(\d+)$/);
  expect(accepted + refused + other).toBe(50);
  expect(accepted).toBeGreaterThan(0);
  expect(numbersIn(cell(8, 'result'), /^Retry-After on (\d+)\/(\d+) /)[1]).toBe(refused);
});
