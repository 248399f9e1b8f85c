import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import preact from '@preact/preset-vite';
import { defineConfig, type Plugin } from 'vite';

// The API the dev server forwards to (`npm run dev` starts it on port 8000).
const API = process.env.API_URL ?? 'http://127.0.0.1:8000';

const COMPRESSIBLE = /\.(js|css|html|svg|json)$/;

/**
 * Writes `.br` and `.gz` beside each text file of the build, which @fastify/static sends to browsers
 * that accept them: compressed once at build time at the highest levels, never per request. Written
 * here rather than taken from a plugin because zlib does all the work in a dozen lines.
 */
function precompress(): Plugin {
  return {
    name: 'precompress',
    apply: 'build',
    writeBundle: async ({ dir: outDir = '' }, bundle) => {
      const names = Object.keys(bundle).filter((name) => COMPRESSIBLE.test(name));
      await Promise.all(
        names.map(async (name) => {
          const path = join(outDir, name);
          const content = await readFile(path);
          const brotli = promisify(brotliCompress)(content, {
            params: { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY },
          });
          const gzipped = promisify(gzip)(content, { level: constants.Z_BEST_COMPRESSION });
          await writeFile(`${path}.br`, await brotli);
          await writeFile(`${path}.gz`, await gzipped);
        }),
      );
    },
  };
}

/** The web app in web/: `npm run build` puts it in dist/web, which the service serves at `/`. */
export default defineConfig({
  root: 'web',
  plugins: [preact(), precompress()],
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    // Every browser the page is for has ES modules; no legacy bundle.
    target: 'es2022',
  },
  server: {
    proxy: Object.fromEntries(
      ['/api/v1', '/api_v1', '/health', '/ready', '/docs', '/openapi.json'].map((path) => [path, API]),
    ),
  },
});
