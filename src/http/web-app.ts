import { access } from 'node:fs/promises';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/** The page's own routes: each is the same single-page app, which reads the path. */
const PAGE_PATHS = ['/', '/listen', '/settings'] as const;

// Vite names every asset after a hash of its content, so a changed file is a new URL.
const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * Serves the built web app (web/, built by `npm run build`) at `/`. The page talks to the service only
 * through the public API, like any other client.
 */
export async function registerWebApp(app: FastifyInstance, webDir: string | undefined): Promise<void> {
  if (webDir === undefined) return;
  if (!(await isReadable(join(webDir, 'index.html')))) {
    app.log.warn({ webDir }, 'the web app is not built (npm run build): only the API is served');
    return;
  }
  await app.register(fastifyStatic, {
    root: webDir,
    // Routes for the files there at start-up, not a catch-all: an unknown path stays the API's 404.
    wildcard: false,
    index: false,
    // The build writes .br and .gz beside each text file (vite.config.ts).
    preCompressed: true,
    globIgnore: ['**/*.br', '**/*.gz'],
    cacheControl: false,
    setHeaders: (reply, path) => {
      reply.header('cache-control', path.startsWith(join(webDir, 'assets')) ? IMMUTABLE : 'no-cache');
    },
  });
  for (const url of PAGE_PATHS) {
    app.get(url, { schema: { hide: true } }, (_request, reply) => reply.sendFile('index.html'));
  }
}

async function isReadable(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
