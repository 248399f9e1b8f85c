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
// Nearly two minutes on a loaded 2-core machine, plus two S3 services' start-ups (each its own PGlite) for 24–26.
it('runs npm run bench --smoke to the end and writes a table of real measurements', { timeout: 300_000 }, async () => {
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
  // 1–8: issue 3's rows; 9–23: issue 10's (input kinds, peaks, the 1 GiB FLAC); 24–26: object storage; 27: web app;
  // 28: row 4's cores busy and CPU split; 29: memory and latency on each database.
  expect([...rows.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 29 }, (_, index) => index + 1));
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
  // 28: during 4, the cores' utilisation and where the CPU went; the encoders did all the converting.
  const [busy = 0, server = 0, encoders = 0, database = -1, client = 0] = numbersIn(
    cell(28, 'service'),
    /^cores busy (\d+\.\d) %; server (\d+\.\d\d) CPU-s, encoders (\d+\.\d\d) CPU-s, database (\d+\.\d\d) CPU-s, client (\d+\.\d\d) CPU-s$/,
  );
  expect(busy).toBeGreaterThan(0);
  expect(busy).toBeLessThanOrEqual(100);
  expect(encoders).toBeGreaterThan(server);
  expect(database).toBeGreaterThanOrEqual(0);
  expect(client).toBeGreaterThan(0);
  const [bareBusy = 0, bareEncoders = 0, relay = -1, relayShare = -1] = numbersIn(
    cell(28, 'baseline'),
    /^bare ffmpeg: cores busy (\d+\.\d) %, encoders (\d+\.\d\d) CPU-s; socat relaying the same samples into ffmpeg: (\d+\.\d\d) CPU-s, (\d+\.\d) % of its encoders' CPU$/,
  );
  expect(bareBusy).toBeGreaterThan(0);
  expect(bareEncoders).toBeGreaterThan(0);
  // socat's CPU is counted in ticks of 10 ms: a short run may round to none.
  expect(relay).toBeGreaterThanOrEqual(0);
  expect(relayShare).toBeLessThan(100);
  const [resultBusy, serverShare = -1, relayMultiple = -1] = numbersIn(
    cell(28, 'result'),
    /^busy (\d+\.\d) %; server (\d+\.\d) % of encoder CPU \(×(\d+\.\d) of socat's share\)$/,
  );
  expect(resultBusy).toBe(busy);
  expect(serverShare).toBeGreaterThan(0);
  expect(relayMultiple).toBeGreaterThan(0);
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
  // wrk against nginx on the same file: both baselines real numbers, no failed request.
  const [nginxWhole = 0, , , nginxRanges = 0] = numbersIn(
    cell(7, 'baseline'),
    /^nginx, same file, sendfile, 1 worker: (\d+) MB\/s \((\d+\.\d) req\/s\); ranges: (\d+) MB\/s \((\d+) req\/s\)$/,
  );
  expect(nginxWhole).toBeGreaterThan(0);
  expect(nginxRanges).toBeGreaterThan(0);
  expect(
    numbersIn(
      cell(7, 'result'),
      /^whole ×(\d+\.\d\d) of nginx; ranges (\d+) req\/s \(×(\d+\.\d\d)\); server RSS growth (-?\d+\.\d) MiB whole, (-?\d+\.\d) MiB ranges; (\d+) errors$/,
    )[5],
  ).toBe(0);
  // 8: 50 uploads against a capacity of 6: every one accounted for, the refused ones counted in the result.
  const [accepted = 0, refused = 0, other = 0] = numbersIn(cell(8, 'service'), /^200×(\d+), 503×(\d+), other×(\d+)$/);
  expect(accepted + refused + other).toBe(50);
  expect(accepted).toBeGreaterThan(0);
  expect(numbersIn(cell(8, 'result'), /^Retry-After on (\d+)\/(\d+) /)[1]).toBe(refused);

  // 24: the S3 driver's upload against the local driver's and bare ffmpeg, and both ratios.
  const [s3Upload = 0] = numbersIn(cell(24, 'service'), /^(\d+\.\d\d) s$/);
  const [localUpload = 0, bareUpload = 0] = numbersIn(
    cell(24, 'baseline'),
    /^(\d+\.\d\d) s local driver; (\d+\.\d\d) s bare ffmpeg$/,
  );
  const [ofLocal = 0, ofBare = 0] = numbersIn(
    cell(24, 'result'),
    /^×(\d+\.\d{3}) of local, ×(\d+\.\d{3}) of bare ffmpeg$/,
  );
  expect(s3Upload * localUpload * bareUpload).toBeGreaterThan(0);
  expect(Math.abs(ofLocal - s3Upload / localUpload)).toBeLessThan(0.05 * ofLocal + 0.05);
  expect(Math.abs(ofBare - s3Upload / bareUpload)).toBeLessThan(0.05 * ofBare + 0.05);
  // 25: the lags after the last byte with a multipart put, one PutObject and the local driver, and differences.
  const [multipartLag = -1] = numbersIn(cell(25, 'service'), /^(\d+\.\d\d) s$/);
  const [localLag = -1, putLag = -1] = numbersIn(
    cell(25, 'baseline'),
    /^(\d+\.\d\d) s local driver; (\d+\.\d\d) s S3 with one PutObject$/,
  );
  const lagResult =
    /^(\d+\.\d\d) s: ([+−])(\d+\.\d\d) s over local \(one PutObject: ([+−])(\d+\.\d\d) s\) \(whole request (\d+\.\d\d) s\)$/;
  const [, lagAgainS3, multipartSign, multipartOver, putSign, putOver, wholeLag] =
    lagResult.exec(cell(25, 'result') ?? '') ?? [];
  expect(wholeLag, cell(25, 'result')).toBeDefined();
  expect(Number(lagAgainS3)).toBe(multipartLag);
  const signed = (sign: string | undefined, value: string | undefined) => (sign === '−' ? -1 : 1) * Number(value);
  expect(Math.abs(signed(multipartSign, multipartOver) - (multipartLag - localLag))).toBeLessThan(0.015);
  expect(Math.abs(signed(putSign, putOver) - (putLag - localLag))).toBeLessThan(0.015);
  expect(Number(wholeLag)).toBeGreaterThanOrEqual(multipartLag);
  expect(Math.min(multipartLag, localLag, putLag)).toBeGreaterThanOrEqual(0);
  // 26: downloads through the proxy, from the local driver and from s3rver, all answered, memory measured.
  const rates = String.raw`(\d+) MB/s \((\d+\.\d) req/s\); ranges: (\d+) MB/s \((\d+) req/s\)`;
  const [, proxyRate = 0, , proxyRanges = 0] = numbersIn(cell(26, 'service'), new RegExp(`^${rates}$`));
  const baselineRates = numbersIn(
    cell(26, 'baseline'),
    new RegExp(`^local driver: ${rates}; s3rver itself \\(presigned GET\\): ${rates}$`),
  );
  for (const rate of [proxyRate, proxyRanges, ...baselineRates.filter((_, index) => index % 2 === 1)]) {
    expect(rate).toBeGreaterThan(0);
  }
  numbersIn(
    cell(26, 'result'),
    /^×(\d+\.\d\d) of local \(ranges ×(\d+\.\d\d)\), ×(\d+\.\d\d) of s3rver \(ranges ×(\d+\.\d\d)\); server RSS growth (-?\d+\.\d) MiB whole, (-?\d+\.\d) MiB ranges \(local: (-?\d+\.\d) MiB, (-?\d+\.\d) MiB\)$/,
  );
  // Every request answered 200 (whole) or 206 (ranges), and the proxy's memory below 16 whole files.
  expect(rows.get(26)?.[5]).toBe('recorded');

  // 27: the web app's compressed weight, below the uncompressed one (the build is the real one even here).
  const [brotli = 0, gzip = 0] = numbersIn(cell(27, 'service'), /^brotli (\d+\.\d) KB, gzip (\d+\.\d) KB$/);
  const [plain = 0] = numbersIn(cell(27, 'baseline'), /^uncompressed (\d+\.\d) KB$/);
  expect(brotli).toBeGreaterThan(0);
  expect(brotli).toBeLessThanOrEqual(gzip);
  expect(gzip).toBeLessThan(plain);
  expect(numbersIn(cell(27, 'result'), /^(\d+\.\d) KB \(×(\d\.\d{3}) of uncompressed\)$/)[0]).toBe(brotli);

  // 29: each database's service, fresh: idle and loaded RSS and POST /users p99; PostgreSQL only when the run has it.
  const footprint = (name: string) =>
    new RegExp(
      `^${name}: idle (\\d+\\.\\d) MiB \\(start-up peak (\\d+\\.\\d) MiB\\), loaded (\\d+\\.\\d) MiB ` +
        `\\+ launcher (\\d+\\.\\d) MiB of its own \\(RSS (\\d+\\.\\d) MiB\\), POST /users p99 (\\d+\\.\\d) ms$`,
    );
  const [embeddedIdle = 0, startPeak = 0, loaded = 0, launcherOwn = 0, launcherRss = 0] = numbersIn(
    cell(29, 'service'),
    footprint('PGlite'),
  );
  expect(embeddedIdle).toBeGreaterThan(0);
  expect(startPeak).toBeGreaterThanOrEqual(embeddedIdle);
  expect(loaded).toBeGreaterThan(0);
  expect(launcherOwn).toBeGreaterThan(0);
  expect(launcherRss).toBeGreaterThan(launcherOwn);
  if (env.DATABASE_URL === undefined) {
    expect(cell(29, 'baseline')).toBe('PostgreSQL: not measured (DATABASE_URL unset)');
  } else {
    numbersIn(cell(29, 'baseline'), footprint('PostgreSQL'));
  }
});
