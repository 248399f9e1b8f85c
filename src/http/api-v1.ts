import type { FastifyInstance } from 'fastify';
import type { Services } from '../container.js';
import { RecordViews } from './record-views.js';
import { accountRoutes } from './routes/accounts.js';
import { recordLinkRoutes } from './routes/record-links.js';
import { recordingRoutes } from './routes/recordings.js';

/** The seed documents both spellings; `/api/v1` is the one shown in the API docs. */
const API_PREFIXES = ['/api/v1', '/api_v1'] as const;

export async function registerApiV1(app: FastifyInstance, services: Services): Promise<void> {
  const { accounts, recordings, config } = services;
  const views = new RecordViews(config.publicUrl);
  for (const prefix of API_PREFIXES) {
    await app.register(
      async (api) => {
        // The same routes twice would be documented twice: only the first spelling appears in the docs.
        if (prefix !== API_PREFIXES[0]) {
          api.addHook('onRoute', (route) => {
            route.schema = { ...route.schema, hide: true };
          });
        }
        await api.register(accountRoutes, { accounts, config });
        await api.register(recordingRoutes, { recordings, views, config });
        await api.register(recordLinkRoutes, { recordings, views });
      },
      { prefix },
    );
  }
}
