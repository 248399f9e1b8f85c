import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AccountService, AuthenticatedUser } from '../services/accounts.js';

/**
 * How a route authenticates, set in its `config.auth`:
 * - `owner`: the token must belong to the `user_id` of the path or query;
 * - `token`: the token alone names the user.
 */
type AuthMode = 'owner' | 'token';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthMode;
    /** The route reads its body as a stream under its own limits (uploads), not under the body deadline. */
    streamedBody?: boolean;
    /** The answer is private (a new token): never cached. Authenticated routes are private anyway. */
    privateResponse?: boolean;
  }
  interface FastifyRequest {
    authenticatedUser: AuthenticatedUser | null;
  }
}

/** A string parameter of the validated path or query; routes declare its shape in their schema. */
export function stringParameter(source: unknown, name: string): string | undefined {
  if (typeof source !== 'object' || source === null) return undefined;
  const value: unknown = Reflect.get(source, name);
  return typeof value === 'string' ? value : undefined;
}

/** The token from `Authorization: Bearer …`, else from the `access_token` query parameter. */
function presentedToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
  return stringParameter(request.query, 'access_token');
}

function claimedUserId(request: FastifyRequest): string {
  const userId = stringParameter(request.params, 'user_id') ?? stringParameter(request.query, 'user_id');
  // The route's schema requires a UUID here; a route without one is a programming error.
  if (typeof userId !== 'string') throw new Error(`${request.routeOptions.url ?? ''} has auth "owner" but no user_id`);
  return userId.toLowerCase();
}

/** One preHandler authenticates every route that asks for it; the others pass untouched. */
export function registerAuthentication(app: FastifyInstance, accounts: AccountService): void {
  app.decorateRequest('authenticatedUser', null);
  app.addHook('preHandler', async (request) => {
    const mode = request.routeOptions.config.auth;
    if (mode === undefined) return;
    const token = presentedToken(request);
    request.authenticatedUser =
      mode === 'owner'
        ? await accounts.authenticate(claimedUserId(request), token)
        : await accounts.authenticateToken(token);
  });
}

/** The user the preHandler authenticated; only for routes with `config.auth`. */
export function userOf(request: FastifyRequest): AuthenticatedUser {
  const user = request.authenticatedUser;
  if (user === null) throw new Error(`${request.routeOptions.url ?? ''} is not authenticated: set config.auth`);
  return user;
}
