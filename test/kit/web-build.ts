import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'vite';

let built: Promise<string> | undefined;

/**
 * The web app, built from web/ into a folder of this test file's own, as `npm run build` builds it (a
 * build takes a fraction of a second). Tests serve it with WEB_DIR, so they never see a stale dist/web.
 */
export function builtWebApp(): Promise<string> {
  built ??= (async () => {
    const outDir = await mkdtemp(join(tmpdir(), 'audio-web-'));
    await build({ configFile: 'vite.config.ts', logLevel: 'warn', build: { outDir, emptyOutDir: true } });
    return outDir;
  })();
  return built;
}
