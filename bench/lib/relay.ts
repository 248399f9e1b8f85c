import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { setPriority } from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { freePort } from '../../test/kit/http.js';
import { sleep } from '../../test/kit/stats.js';
import { ENCODER_NICENESS } from '../../src/media/transcoder.js';
import { statTimes } from './cpu.js';

/**
 * The floor under the service's own CPU during row 4 (row 28's relay baseline): socat, a C program that does
 * nothing but copy, takes a WAV's samples from a loopback TCP connection and writes them into ffmpeg's
 * stdin, 64 KiB at a time as Node reads a socket and writes a pipe. No HTTP, no multipart, no peaks, no
 * database: whatever the service spends beyond this is its own.
 */
const RELAY_CHUNK_BYTES = 64 * 1024;

/** What one relayed conversion took: socat's CPU-seconds (its own, 10 ms resolution). */
export interface RelayedRun {
  readonly relaySeconds: number;
}

/**
 * Sends `wavPath`'s samples (after its `headerBytes`) through socat into ffmpeg run with `args`, which read
 * raw samples from pipe:0, at the encoders' niceness; ffmpeg's peaks output (fd 3) is drained. socat runs
 * under a shell that prints its own /proc stat line once socat has exited: the shell's reaped-children
 * times are then socat's alone, which this process's own counters cannot tell apart from ffmpeg's.
 */
export async function runRelayed(
  ffmpegPath: string,
  args: readonly string[],
  wavPath: string,
  headerBytes: number,
): Promise<RelayedRun> {
  const port = await freePort();
  const environment = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' };
  const ffmpeg = spawn(ffmpegPath, args, { stdio: ['pipe', 'ignore', 'pipe', 'pipe'], env: environment });
  renice(ffmpeg);
  const relay = spawn(
    'sh',
    [
      '-c',
      'socat "$@"; status=$?; read -r stat < /proc/$$/stat; echo "$stat" >&2; exit $status',
      'sh',
      '-u',
      `-b${RELAY_CHUNK_BYTES}`,
      `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr`,
      'STDOUT',
    ],
    { stdio: ['ignore', ffmpeg.stdin ?? 'ignore', 'pipe'], env: environment },
  );
  const exits = Promise.all([exitCode(relay), exitCode(ffmpeg)]);
  // socat holds the pipe's write end now; ffmpeg sees the end of its input when socat exits.
  ffmpeg.stdin?.destroy();
  const relayStderr = collect(relay.stderr);
  const ffmpegStderr = collect(ffmpeg.stderr);
  const peaks = ffmpeg.stdio[3];
  if (peaks instanceof Readable) peaks.resume();

  const socket = await connectWhenListening(port, () => relay.exitCode !== null);
  if (socket !== undefined) {
    await pipeline(createReadStream(wavPath, { start: headerBytes, highWaterMark: 256 * 1024 }), socket);
  }
  const [relayCode, ffmpegCode] = await exits;
  const relayOutput = (await relayStderr).trim();
  if (relayCode === 127) throw new Error('socat is not installed (apt-get install socat; .ci/run installs it)');
  if (relayCode !== 0) throw new Error(`socat exited with ${relayCode}: ${relayOutput}`);
  if (ffmpegCode !== 0) throw new Error(`ffmpeg exited with ${ffmpegCode}: ${(await ffmpegStderr).trim()}`);
  const relaySeconds = statTimes(relayOutput.split('\n').at(-1) ?? '').reapedChildrenSeconds;
  if (!Number.isFinite(relaySeconds)) throw new Error(`no /proc stat line from the relay's shell: ${relayOutput}`);
  return { relaySeconds };
}

function renice(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    setPriority(child.pid, ENCODER_NICENESS);
  } catch {
    // As the service: normal priority where renicing is not permitted.
  }
}

function collect(stream: Readable | null): Promise<string> {
  if (stream === null) return Promise.resolve('');
  let text = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => (text = (text + chunk).slice(-4000)));
  return new Promise((resolve) => stream.once('close', () => resolve(text)));
}

function exitCode(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
}

/**
 * socat listens a few milliseconds after it starts; its one accepted connection is the data itself.
 * undefined when it exited first (not installed, say).
 */
async function connectWhenListening(port: number, exited: () => boolean): Promise<Socket | undefined> {
  for (let attempt = 0; ; attempt += 1) {
    if (exited()) return undefined;
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => resolve(socket));
        socket.once('error', reject);
      });
    } catch (error) {
      if (attempt >= 500) throw error;
      await sleep(10);
    }
  }
}
