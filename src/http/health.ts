import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Unavailable } from '../domain/errors.js';
import { Health, ProblemDetails } from './api-schemas.js';

export interface HealthChecks {
  /** Resolves when the database answers. */
  readonly database: () => Promise<void>;
  /** Resolves when the audio storage answers (the folder, or the bucket). */
  readonly storage: () => Promise<void>;
  /** Resolves when the converter can be run. */
  readonly converter: () => Promise<void>;
}

const READY_TIMEOUT_MS = 2000;

export const healthRoutes: FastifyPluginAsyncTypebox<{ checks: HealthChecks }> = async (app, { checks }) => {
  app.get(
    '/health',
    { schema: { tags: ['health'], summary: 'The process is alive', response: { 200: Health } }, logLevel: 'warn' },
    () => ({ status: 'ok' }),
  );

  app.get(
    '/ready',
    {
      schema: {
        tags: ['health'],
        summary: 'The database and the audio storage answer, and ffmpeg is found',
        response: { 200: Health, 503: ProblemDetails },
      },
      logLevel: 'warn',
    },
    async () => {
      const failures: string[] = [];
      await Promise.all([
        withTimeout(checks.database()).catch(() => failures.push('the database does not answer')),
        withTimeout(checks.storage()).catch(() => failures.push('the audio storage does not answer')),
        withTimeout(checks.converter()).catch(() => failures.push('ffmpeg cannot be run')),
      ]);
      if (failures.length > 0) throw new Unavailable(`Not ready: ${failures.join('; ')}.`, 5);
      return { status: 'ready' };
    },
  );
};

async function withTimeout(check: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), READY_TIMEOUT_MS);
  });
  try {
    await Promise.race([check, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
