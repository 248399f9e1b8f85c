import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

// The encoders of the stored formats (outputs.ts); a build without one would refuse those uploads as 422.
const ENCODERS = ['libmp3lame', 'libopus', 'aac', 'flac'];

/** Resolves with ffmpeg's version line when the binary runs and has every encoder the outputs use. */
export async function checkFfmpeg(ffmpegPath: string): Promise<string> {
  const { stdout } = await run(ffmpegPath, ['-hide_banner', '-encoders'], { timeout: 5000 });
  const missing = ENCODERS.filter((name) => !new RegExp(`^ A\\S* ${name} `, 'm').test(stdout));
  if (missing.length > 0) throw new Error(`${ffmpegPath} has no ${missing.join(', ')} encoder`);
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
