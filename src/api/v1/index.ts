import type { FastifyInstance } from 'fastify';
import { accountRoutes } from './accounts.js';
import { recordManagementRoutes } from './record-management.js';
import { recordRoutes } from './records.js';
import type { Services } from './services.js';
import { userRoutes } from './users.js';

/** The seed documents both spellings; `/api/v1` is the one shown in the API docs. */
export const API_PREFIXES = ['/api/v1', '/api_v1'] as const;

export async function registerApiV1(app: FastifyInstance, services: Services): Promise<void> {
  for (const prefix of API_PREFIXES) {
    const hidden = prefix !== API_PREFIXES[0];
    await app.register(
      async (api) => {
        await api.register(userRoutes, { services, hidden });
        await api.register(recordRoutes, { services, hidden });
        await api.register(recordManagementRoutes, { services, hidden });
        await api.register(accountRoutes, { services, hidden });
      },
      { prefix },
    );
  }
}
