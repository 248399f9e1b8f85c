import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import type { Config } from '../config.js';
import type { Services } from '../container.js';
import { RateLimited } from '../domain/errors.js';
import { clientKey } from './protection.js';
import { RecordViews } from './record-views.js';
import { accountRoutes } from './routes/accounts.js';
import { recordLinkRoutes } from './routes/record-links.js';
import { recordingRoutes } from './routes/recordings.js';

/** The seed documents both spellings; `/api/v1` is the one shown in the API docs. */
const API_PREFIXES = ['/api/v1', '/api_v1'] as const;

export async function registerApiV1(app: FastifyInstance, services: Services): Promise<void> {
  const { accounts, recordings, config } = services;
  const views = new RecordViews(config.publicUrl);
  const limitUserCreation = userCreationLimit(app, config);
  for (const prefix of API_PREFIXES) {
    await app.register(
      async (api) => {
        // The same routes twice would be documented twice: only the first spelling appears in the docs.
        if (prefix !== API_PREFIXES[0]) {
          api.addHook('onRoute', (route) => {
            route.schema = { ...route.schema, hide: true };
          });
        }
        await api.register(accountRoutes, { accounts, limitUserCreation });
        await api.register(recordingRoutes, { recordings, views, config });
        await api.register(recordLinkRoutes, { recordings, views });
      },
      { prefix },
    );
  }
}

/** One limit (one counter per client) for user creation under both prefixes, or none when it is off. */
function userCreationLimit(app: FastifyInstance, config: Config): onRequestAsyncHookHandler | undefined {
  const { userCreations, windowMs } = config.rateLimit;
  if (userCreations === 0) return undefined;
  return app.rateLimit({
    // Named, because every limit's counts live in one store (shared by replicas).
    keyGenerator: (request) => `user-creations ${clientKey(request)}`,
    max: userCreations,
    timeWindow: windowMs,
    errorResponseBuilder: (_request, context) =>
      new RateLimited(
        `Too many users created from this client; try again in ${context.after}.`,
        Math.max(1, Math.ceil(context.ttl / 1000)),
      ),
  });
}
