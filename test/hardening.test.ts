import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREFIX, createUser, openUpload, recordIdOf, upload, type TestUser } from './kit/client.js';
import { expectNoTempFiles, expectProblem } from './kit/expect.js';
import { rawHttp } from './kit/http.js';
import { ffmpegDescendants, runCheckStorage } from './kit/process.js';
import { logLines, startIsolatedService, startService, type IsolatedService } from './kit/service.js';
import { storageEnv } from './kit/storage.js';
import { chunk, decodeMp3, makeWav } from './kit/wav.js';

// The hardening review (issue 9): each block shows one hole and that it is closed. All run on PGlite:
// none of them depends on the database engine.

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A WAV whose header starts with a JUNK chunk of `junkBytes`, as a slow client would trickle it. */
function wavWithJunk(junkBytes: number): Buffer {
  const wav = makeWav({ durationSeconds: 0.2 });
  return Buffer.concat([wav.subarray(0, 12), chunk('JUNK', Buffer.alloc(junkBytes)), wav.subarray(12)]);
}

describe('slow uploads cannot hold a conversion slot', () => {
  let service: IsolatedService;
  let user: TestUser;
  beforeAll(async () => {
    service = await startIsolatedService('pglite', {
      CONVERT_CONCURRENCY: '1',
      CONVERT_QUEUE_SIZE: '4',
      UPLOAD_MIN_BYTES_PER_SECOND: '4000',
      UPLOAD_RATE_WINDOW_SECONDS: '2',
      UPLOAD_IDLE_TIMEOUT_SECONDS: '60',
      CONVERT_TIMEOUT_SECONDS: '6',
      LOG_LEVEL: 'warn',
    });
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  /** Sends `bytes` a few at a time, fast enough never to look idle, far slower than the minimum rate. */
  async function trickle(request: { write(chunk: Buffer): Promise<void>; answer: unknown }, bytes: Buffer) {
    for (let offset = 0; offset < bytes.length && request.answer === undefined; offset += 100) {
      await request.write(bytes.subarray(offset, offset + 100)).catch(() => undefined);
      await sleep(100);
    }
  }

  it('cuts a header trickled below the minimum rate with 408, and frees the slot', async () => {
    const started = Date.now();
    const slow = await openUpload(service.url, user);
    void trickle(slow, wavWithJunk(1000 * 1024));
    const answer = await slow.response;
    await expectProblem(answer, 408);
    // The window is 2 s of samples; a generous margin for a loaded machine.
    expect(Date.now() - started).toBeLessThan(8000);
    // The only slot is free again: a normal upload goes straight through.
    expect((await upload(service.url, user, makeWav({ durationSeconds: 0.2 }))).status).toBe(200);
    await expectNoTempFiles(service.dataDir);
  });

  it('cuts form fields trickled after the file the same way', async () => {
    // The whole file at once; what follows it is up to the test.
    const request = await openUpload(service.url, user);
    const { form } = request;
    await request.write(makeWav({ durationSeconds: 0.2 }));
    const field = Buffer.from(
      `\r\n--${form.boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\n${'t'.repeat(3000)}`,
    );
    void trickle(request, field);
    await expectProblem(await request.response, 408);
    await expectNoTempFiles(service.dataDir);
  });

  it('cuts a body that keeps a fair rate but is not complete by the deadline (CONVERT_TIMEOUT_SECONDS)', async () => {
    // The whole file at once; what follows it is up to the test.
    const request = await openUpload(service.url, user);
    const { form } = request;
    await request.write(makeWav({ durationSeconds: 0.2 }));
    await request.write(
      Buffer.from(`\r\n--${form.boundary}\r\nContent-Disposition: form-data; name="ignored"\r\n\r\n`),
    );
    const started = Date.now();
    // About 12,000 bytes a second stays well above the minimum rate; the deadline of 6 s still ends it.
    while (request.answer === undefined && Date.now() - started < 20_000) {
      await request.write(Buffer.alloc(1200, 0x61)).catch(() => undefined);
      await sleep(100);
    }
    const problem = await expectProblem(await request.response, 408);
    expect(problem.detail).toMatch(/within 6 seconds/);
  });

  it('refuses a second file part with 400', async () => {
    const wav = makeWav({ durationSeconds: 0.2 });
    const form = new FormData();
    form.append('file', new Blob([wav]), 'one.wav');
    form.append('file', new Blob([wav]), 'two.wav');
    const response = await fetch(`${service.url}${PREFIX}/record/?user_id=${user.user_id}`, {
      method: 'POST',
      body: form,
      headers: { authorization: `Bearer ${user.access_token}` },
    });
    const problem = await expectProblem(response, 400);
    expect(problem.detail).toMatch(/more than one "file"/);
    await expectNoTempFiles(service.dataDir);
  });
});

describe('uploads at once per account and per client address', () => {
  let service: IsolatedService;
  beforeAll(async () => {
    service = await startIsolatedService('pglite', {
      CONVERT_CONCURRENCY: '4',
      MAX_UPLOADS_PER_USER: '1',
      MAX_UPLOADS_PER_ADDRESS: '2',
      LOG_LEVEL: 'warn',
    });
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  it('answers 429 with Retry-After past either cap, and counts an upload only while it runs', async () => {
    const [alice, bob, carol] = await Promise.all([1, 2, 3].map(() => createUser(service.url)));
    if (alice === undefined || bob === undefined || carol === undefined) throw new Error('no users');
    const small = makeWav({ durationSeconds: 0.1 });
    const held = await openUpload(service.url, alice);
    await held.write(makeWav({ durationSeconds: 1 }).subarray(0, 2000));
    // Counted once admitted: its encoder runs (the service runs in this process).
    await expect
      .poll(() => ffmpegDescendants(process.pid, { conversionsOnly: true }), { timeout: 15_000 })
      .toHaveLength(1);
    const sameUser = await upload(service.url, alice, small);
    await expectProblem(sameUser, 429);
    expect(Number(sameUser.headers.get('retry-after'))).toBeGreaterThan(0);

    const secondHeld = await openUpload(service.url, bob);
    await secondHeld.write(makeWav({ durationSeconds: 1 }).subarray(0, 2000));
    await expect
      .poll(() => ffmpegDescendants(process.pid, { conversionsOnly: true }), { timeout: 15_000 })
      .toHaveLength(2);
    // A third account from the same address: the address already has two uploads under way.
    await expectProblem(await upload(service.url, carol, small), 429);

    held.abort();
    secondHeld.abort();
    await expect
      .poll(async () => (await upload(service.url, alice, small)).status, {
        timeout: 10_000,
      })
      .toBe(200);
  });
});

describe('slow request bodies, slow readers and idle sockets are cut', () => {
  let service: IsolatedService;
  let user: TestUser;
  let bigRecordUrl: string;
  let bigRecordBytes: number;
  beforeAll(async () => {
    service = await startIsolatedService('pglite', {
      REQUEST_BODY_TIMEOUT_SECONDS: '1',
      RESPONSE_IDLE_TIMEOUT_SECONDS: '1',
      MP3_BITRATE_KBPS: '320',
      LOG_LEVEL: 'warn',
    });
    user = await createUser(service.url);
    // Large enough (about 30 MB) that the socket buffers cannot hold the whole answer: 12 MB sometimes fit
    // on loopback, where both ends' buffers grow to several MB.
    const response = await upload(
      service.url,
      user,
      makeWav({ durationSeconds: 750, sampleRate: 48_000, channels: 1 }),
    );
    expect(response.status).toBe(200);
    bigRecordUrl = ((await response.json()) as { record_url: string }).record_url;
    bigRecordBytes = Number((await fetch(bigRecordUrl, { method: 'HEAD' })).headers.get('content-length'));
    expect(bigRecordBytes).toBeGreaterThan(25_000_000);
  }, 120_000);
  afterAll(async () => {
    await service?.cleanup();
  });

  it('closes a PATCH that announces a body and never sends it', async () => {
    const recordId = recordIdOf(bigRecordUrl);
    const started = Date.now();
    const answer = await rawHttp(
      service.url,
      `PATCH ${PREFIX}/records/${recordId}?user_id=${user.user_id} HTTP/1.1\r\nHost: x\r\n` +
        `Authorization: Bearer ${user.access_token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ti`,
      10_000,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    // Answered 408 while the JSON parser waited, or simply closed: either way the socket is gone.
    expect([0, 408]).toContain(answer.status);
  });

  it('cuts a download whose reader stops reading, and serves the same file to a reader that reads', async () => {
    const url = new URL(bigRecordUrl);
    const socket = connect(Number(url.port), '127.0.0.1');
    let received = 0;
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.on('data', (data: Buffer) => (received += data.length));
    // Stop reading at the first bytes, in the same tick: the service runs in this process, and a poll
    // delayed on a loaded machine once let the whole file arrive before the pause.
    socket.once('data', () => socket.pause());
    socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await expect.poll(() => received).toBeGreaterThan(0);
    await sleep(4000);
    socket.resume();
    await closed;
    expect(received).toBeLessThan(bigRecordBytes);

    const whole = await fetch(bigRecordUrl);
    expect((await whole.arrayBuffer()).byteLength).toBe(bigRecordBytes);
  }, 30_000);

  it('answers HEAD with the headers of GET and reads no file data', async () => {
    const readBefore = await bytesReadByThisProcess();
    const head = await fetch(bigRecordUrl, { method: 'HEAD' });
    // A server that drains the file for HEAD does so after answering: give it time to show.
    await sleep(1000);
    const readByHead = (await bytesReadByThisProcess()) - readBefore;
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBe(bigRecordBytes);
    expect(head.headers.get('etag')).toMatch(/^"/);
    // The server runs in this process: a GET reads the whole file, a HEAD none of it.
    expect(readByHead).toBeLessThan(bigRecordBytes / 10);
    const getBefore = await bytesReadByThisProcess();
    await (await fetch(bigRecordUrl)).arrayBuffer();
    expect((await bytesReadByThisProcess()) - getBefore).toBeGreaterThan(bigRecordBytes);
  });
});

describe('connection caps', () => {
  let service: IsolatedService;
  beforeAll(async () => {
    service = await startIsolatedService('pglite', { MAX_CONNECTIONS_PER_ADDRESS: '256', LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  it('1,000 idle sockets from one address do not stop other clients', async () => {
    const port = Number(new URL(service.url).port);
    const sockets: Socket[] = [];
    let closedByServer = 0;
    try {
      await Promise.all(
        Array.from(
          { length: 1000 },
          () =>
            new Promise<void>((resolve) => {
              // Another loopback address than the other client's: the cap is per address.
              const socket = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' }, () => resolve());
              socket.on('error', () => resolve());
              socket.on('close', () => (closedByServer += 1));
              sockets.push(socket);
            }),
        ),
      );
      await expect.poll(() => closedByServer, { timeout: 10_000 }).toBeGreaterThanOrEqual(1000 - 256);
      const answer = await fetch(`${service.url}/health`);
      expect(answer.status).toBe(200);
      expect((await fetch(`${service.url}${PREFIX}/users/?username=still_served`, { method: 'POST' })).status).toBe(
        200,
      );
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
});

describe('disk space', () => {
  it('refuses an upload with 507 when less than MIN_FREE_DISK_BYTES is free', async () => {
    const service = await startIsolatedService('pglite', { MIN_FREE_DISK_BYTES: String(2 ** 52), LOG_LEVEL: 'warn' });
    try {
      const user = await createUser(service.url);
      const problem = await expectProblem(await upload(service.url, user, makeWav({ durationSeconds: 0.2 })), 507);
      expect(problem.type).toBe('/problems/insufficient-storage');
      await expectNoTempFiles(service.dataDir);
    } finally {
      await service.cleanup();
    }
  });

  it('answers 507, never 422, when the disk fills during a conversion', async () => {
    const fake = await fakeFfmpeg(
      // The real ffmpeg answers the start-up checks; a conversion fails as a full disk makes it fail.
      'case "$*" in *pipe:0*) cat >/dev/null; echo "file:/data/tmp/x.partial: No space left on device" >&2; exit 1;; esac\n' +
        'exec ffmpeg "$@"',
    );
    const service = await startIsolatedService('pglite', { FFMPEG_PATH: fake.path, LOG_LEVEL: 'warn' });
    try {
      const user = await createUser(service.url);
      const problem = await expectProblem(await upload(service.url, user, makeWav({ durationSeconds: 0.2 })), 507);
      expect(problem.type).toBe('/problems/insufficient-storage');
    } finally {
      await service.cleanup();
      await fake.cleanup();
    }
  });
});

describe('the WAV is parsed once: ffmpeg gets only the samples the service counted', () => {
  let service: IsolatedService;
  let user: TestUser;
  beforeAll(async () => {
    service = await startIsolatedService('pglite', { LOG_LEVEL: 'warn' });
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  async function uploadAndMeasure(wav: Buffer) {
    const response = await upload(service.url, user, wav);
    expect(response.status).toBe(200);
    const url = ((await response.json()) as { record_url: string }).record_url;
    const metadata = (await (await fetch(url, { headers: { accept: 'application/json' } })).json()) as {
      duration_seconds: number;
      sample_rate: number;
    };
    const mp3 = Buffer.from(await (await fetch(url)).arrayBuffer());
    return { metadata, decoded: decodeMp3(mp3) };
  }

  it('ignores a second data chunk: stored and decoded durations are both the first chunk’s', async () => {
    const first = makeWav({ durationSeconds: 1, sampleRate: 8000, channels: 1 });
    const second = makeWav({ durationSeconds: 3, sampleRate: 8000, channels: 1 }).subarray(36);
    const { metadata, decoded } = await uploadAndMeasure(Buffer.concat([first, second]));
    expect(metadata.duration_seconds).toBeCloseTo(1, 2);
    expect(decoded.seconds).toBeCloseTo(1, 1);
  });

  it('takes an RF64 file’s data size from ds64, as ffmpeg does', async () => {
    const pcm = makeWav({ durationSeconds: 3, sampleRate: 8000, channels: 1 }).subarray(44);
    const fmt = makeWav({ durationSeconds: 0, sampleRate: 8000, channels: 1 }).subarray(12, 36);
    const ds64 = Buffer.alloc(28);
    ds64.writeBigUInt64LE(BigInt(36 + 28 + 8 + pcm.length), 0);
    ds64.writeBigUInt64LE(8000n * 2n, 8); // one second of 16-bit mono
    const data = Buffer.alloc(8);
    data.write('data', 0, 'latin1');
    data.writeUInt32LE(pcm.length, 4); // a data size that disagrees with ds64
    const rf64 = Buffer.concat([
      Buffer.from('RF64\xff\xff\xff\xffWAVE', 'latin1'),
      chunk('ds64', ds64),
      fmt,
      data,
      pcm,
    ]);
    const { metadata, decoded } = await uploadAndMeasure(rf64);
    expect(metadata.duration_seconds).toBeCloseTo(1, 2);
    expect(decoded.seconds).toBeCloseTo(1, 1);
  });

  it('uses the first of two fmt chunks', async () => {
    const mono8k = makeWav({ durationSeconds: 1, sampleRate: 8000, channels: 1 });
    const stereo44k = makeWav({ durationSeconds: 0, sampleRate: 44_100, channels: 2 }).subarray(12, 36);
    const twoFormats = Buffer.concat([mono8k.subarray(0, 36), stereo44k, mono8k.subarray(36)]);
    const { metadata, decoded } = await uploadAndMeasure(twoFormats);
    expect(metadata.sample_rate).toBe(8000);
    expect(decoded.seconds).toBeCloseTo(1, 1);
  });

  it('refuses codecs outside the PCM family, whatever their byte rate says, before ffmpeg runs', async () => {
    const gsm = makeWav({ durationSeconds: 1, sampleRate: 8000, channels: 1 });
    gsm.writeUInt16LE(0x0031, 20); // GSM 6.10
    gsm.writeUInt32LE(1, 28); // a byte rate that would make the duration absurd
    const problem = await expectProblem(await upload(service.url, user, gsm), 422);
    expect(problem.detail).toMatch(/only PCM/);
  });
});

describe('ffmpeg runs with nothing it does not need', () => {
  it('gets a minimal environment, a memory limit and raw input with a duration backstop', async () => {
    const fake = await fakeFfmpeg(
      'case "$*" in *pipe:0*) env > "$0.env"; grep -i "address space" /proc/$$/limits > "$0.limits"; ' +
        'printf "%s\\n" "$@" > "$0.args";; esac\nexec ffmpeg "$@"',
    );
    process.env.SECRET_FOR_THE_TEST = 'must-not-leak';
    const service = await startIsolatedService('pglite', {
      FFMPEG_PATH: fake.path,
      FFMPEG_MAX_MEMORY_BYTES: String(768 * 1024 ** 2),
      MAX_DURATION_SECONDS: '60',
      LOG_LEVEL: 'warn',
    });
    try {
      const user = await createUser(service.url);
      expect((await upload(service.url, user, makeWav({ durationSeconds: 0.2 }))).status).toBe(200);
      const env = await readFile(`${fake.path}.env`, 'utf8');
      expect(env).not.toMatch(/SECRET_FOR_THE_TEST|DATABASE_URL|TEST_DATABASE_URL/);
      const names = env
        .split('\n')
        .filter((line) => line.includes('='))
        .map((line) => line.slice(0, line.indexOf('=')));
      // The shell of the fake adds PWD, SHLVL and _ by itself.
      expect(names.filter((name) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(name)).sort()).toEqual([
        'LC_ALL',
        'PATH',
      ]);
      expect(await readFile(`${fake.path}.limits`, 'utf8')).toMatch(/805306368\s+805306368/);
      const args = (await readFile(`${fake.path}.args`, 'utf8')).split('\n');
      expect(args).toEqual(expect.arrayContaining(['-max_alloc', '-protocol_whitelist', 'pipe', 's16le', '-t', '60']));
      // ffmpeg never parses the upload's WAV container: raw samples in (its own WAV is only the peaks output).
      expect(args.slice(0, args.indexOf('-i'))).not.toContain('wav');
      expect(args[args.indexOf('-i') + 1]).toBe('pipe:0');
    } finally {
      delete process.env.SECRET_FOR_THE_TEST;
      await service.cleanup();
      await fake.cleanup();
    }
  });
});

describe('proxies and the failed-authentication lockout', () => {
  it('with a hop count, a client cannot choose its own address by sending X-Forwarded-For', async () => {
    for (const [trustProxy, expected] of [
      ['1', '7.7.7.7'],
      ['127.0.0.1/8', '7.7.7.7'],
      ['true', '6.6.6.6'],
    ] as const) {
      const service = await startService({ env: { TRUST_PROXY: trustProxy, LOG_LEVEL: 'info' } });
      try {
        // An unknown route: its request is logged with the client's address (probes are not logged).
        await fetch(`${service.url}/no-such-route?probe=${trustProxy}`, {
          headers: { 'x-forwarded-for': '6.6.6.6, 7.7.7.7' },
        });
        const line = logLines(service).find((entry) => JSON.stringify(entry).includes(`probe=${trustProxy}`));
        expect(JSON.stringify(line), trustProxy).toContain(`"remoteAddress":"${expected}"`);
      } finally {
        await service.stop();
        await rm(service.dataDir, { recursive: true, force: true });
      }
    }
  });

  it('locks out only the account being guessed at, and only on authenticated routes', async () => {
    const service = await startIsolatedService('pglite', { RATE_LIMIT_AUTH_FAILURES: '3', LOG_LEVEL: 'warn' });
    try {
      const [alice, bob] = await Promise.all([createUser(service.url), createUser(service.url)]);
      const list = (user: TestUser, token: string) =>
        fetch(`${service.url}${PREFIX}/records?user_id=${user.user_id}`, {
          headers: { authorization: `Bearer ${token}` },
        });
      for (let attempt = 0; attempt < 3; attempt++) expect((await list(alice, crypto.randomUUID())).status).toBe(401);
      expect((await list(alice, alice.access_token)).status).toBe(429);
      // Another account from the same address, and a route without authentication, are not affected.
      expect((await list(bob, bob.access_token)).status).toBe(200);
      expect((await fetch(`${service.url}${PREFIX}/users/?username=newcomer`, { method: 'POST' })).status).toBe(200);
    } finally {
      await service.cleanup();
    }
  });
});

describe('the embedded database is opened by one process only', () => {
  it('a second process fails fast with a clear message while the service runs, and works after it stops', async () => {
    const service = await startService({ env: { LOG_LEVEL: 'warn' } });
    try {
      const second = await runCheckStorage({ dataDir: service.dataDir, env: storageEnv(service.dataDir) });
      expect(second.code).toBe(2);
      expect(second.stderr).toMatch(/in use by process \d+/);
    } finally {
      await service.stop();
    }
    const after = await runCheckStorage({ dataDir: service.dataDir, env: storageEnv(service.dataDir) });
    expect(after.code).toBe(0);
    await rm(service.dataDir, { recursive: true, force: true });
  });

  it('refuses --min-age below the safe minimum', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'audio-min-age-'));
    try {
      const answer = await runCheckStorage({ dataDir }, ['--min-age', '0']);
      expect(answer.code).toBe(2);
      expect(answer.stderr).toMatch(/at least 60/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('smaller ones', () => {
  let service: IsolatedService;
  let user: TestUser;
  beforeAll(async () => {
    service = await startIsolatedService('pglite', { LOG_LEVEL: 'warn' });
    user = await createUser(service.url);
  });
  afterAll(async () => {
    await service?.cleanup();
  });

  it('marks answers with a token or private data no-store, and shared audio no-cache', async () => {
    const created = await fetch(`${service.url}${PREFIX}/users/?username=private_answers`, { method: 'POST' });
    expect(created.headers.get('cache-control')).toBe('no-store');
    const auth = { authorization: `Bearer ${user.access_token}` };
    const me = await fetch(`${service.url}${PREFIX}/users/me`, { headers: auth });
    expect(me.headers.get('cache-control')).toBe('no-store');
    const list = await fetch(`${service.url}${PREFIX}/records?user_id=${user.user_id}`, { headers: auth });
    expect(list.headers.get('cache-control')).toBe('no-store');
    const uploaded = await upload(service.url, user, makeWav({ durationSeconds: 0.2 }));
    expect(uploaded.headers.get('cache-control')).toBe('no-store');
    const { record_url: url } = (await uploaded.json()) as { record_url: string };
    expect((await fetch(url)).headers.get('cache-control')).toBe('no-cache');
    const rotated = await fetch(`${service.url}${PREFIX}/users/${user.user_id}/token`, {
      method: 'POST',
      headers: auth,
    });
    expect(rotated.headers.get('cache-control')).toBe('no-store');
  });
});

describe('the start-up sweep of temp files', () => {
  it('removes files of processes that are gone, and keeps those of a process that still runs', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'audio-sweep-'));
    const living = spawn('sleep', ['30']);
    try {
      const host = hostname();
      const temp = join(dataDir, 'tmp');
      await mkdir(temp, { recursive: true });
      const alive = `${crypto.randomUUID()}.${living.pid}.${host}.partial`;
      const dead = `${crypto.randomUUID()}.999999.${host}.partial`;
      const legacy = `${crypto.randomUUID()}.partial`;
      for (const name of [alive, dead, legacy]) await writeFile(join(temp, name), 'x');
      const service = await startService({ dataDir, env: { LOG_LEVEL: 'warn' } });
      await service.stop();
      expect(await readdir(temp)).toEqual([alive]);
    } finally {
      living.kill();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

/** A shell script standing in for ffmpeg; `body` runs with the real ffmpeg on PATH. */
async function fakeFfmpeg(body: string): Promise<{ path: string; cleanup(): Promise<void> }> {
  const directory = await mkdtemp(join(tmpdir(), 'fake-ffmpeg-'));
  const path = join(directory, 'ffmpeg');
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return { path, cleanup: () => rm(directory, { recursive: true, force: true }) };
}

/** Bytes this process has read through read syscalls (files and sockets), from /proc. */
async function bytesReadByThisProcess(): Promise<number> {
  const io = await readFile('/proc/self/io', 'utf8');
  return Number(/^rchar: (\d+)/m.exec(io)?.[1] ?? 0);
}
