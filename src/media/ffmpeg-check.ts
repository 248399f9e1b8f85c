import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Resolves with ffmpeg's version line when the binary runs and has the MP3 encoder. */
export async function checkFfmpeg(ffmpegPath: string): Promise<string> {
  const { stdout } = await run(ffmpegPath, ['-hide_banner', '-h', 'encoder=libmp3lame'], { timeout: 5000 });
  if (!stdout.includes('libmp3lame')) throw new Error(`${ffmpegPath} has no libmp3lame encoder`);
  const version = await run(ffmpegPath, ['-version'], { timeout: 5000 });
  return version.stdout.split('\n')[0] ?? 'ffmpeg';
}

/** The full path of `name` on PATH, or undefined when it is not installed. */
export function findExecutable(name: string): string | undefined {
  for (const folder of (process.env.PATH ?? '').split(delimiter)) {
    if (folder === '') continue;
    const candidate = join(folder, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}
