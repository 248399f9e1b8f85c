import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Resolves with ffmpeg's version line when the binary runs and has the MP3 encoder. */
export async function checkFfmpeg(ffmpegPath: string): Promise<string> {
  const { stdout } = await run(ffmpegPath, ['-hide_banner', '-h', 'encoder=libmp3lame'], { timeout: 5000 });
  if (!stdout.includes('libmp3lame')) throw new Error(`${ffmpegPath} has no libmp3lame encoder`);
  const version = await run(ffmpegPath, ['-version'], { timeout: 5000 });
  return version.stdout.split('\n')[0] ?? 'ffmpeg';
}
