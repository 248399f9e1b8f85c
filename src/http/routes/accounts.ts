import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { onRequestAsyncHookHandler } from 'fastify';
import type { AccountService } from '../../services/accounts.js';
import {
  CreatedUser,
  CreateUserQuery,
  CurrentUser,
  NewAccessToken,
  TokenOnlyQuery,
  UserParams,
} from '../api-schemas.js';
import { userOf } from '../auth.js';
import { problemResponses, TOKEN_SECURITY } from '../route-options.js';

/** Accounts: create one, who am I, a new token, and deleting everything. */
export const accountRoutes: FastifyPluginAsyncTypebox<{
  accounts: AccountService;
  /** The user-creation limit, shared by both API prefixes; absent when it is off. */
  limitUserCreation: onRequestAsyncHookHandler | undefined;
}> = async (app, { accounts, limitUserCreation }) => {
  app.post(
    '/users/',
    {
      schema: {
        tags: ['users'],
        summary: 'Create a user',
        description: 'Creates a user and returns its id and access token. The token is shown only once.',
        querystring: CreateUserQuery,
        response: { 200: CreatedUser, ...problemResponses(400, 409, 503) },
      },
      config: { privateResponse: true },
      ...(limitUserCreation === undefined ? {} : { onRequest: limitUserCreation }),
    },
    async (request) => {
      const created = await accounts.create(request.query.username);
      return { user_id: created.userId, access_token: created.accessToken };
    },
  );

  app.get(
    '/users/me',
    {
      schema: {
        tags: ['users'],
        summary: 'Who am I',
        description:
          'The account the token belongs to (no `user_id` needed), with how many records it keeps and how ' +
          'many bytes they take.',
        querystring: TokenOnlyQuery,
        security: TOKEN_SECURITY,
        response: { 200: CurrentUser, ...problemResponses(401, 503) },
      },
      config: { auth: 'token' },
    },
    async (request) => {
      const summary = await accounts.summary(userOf(request));
      return {
        user_id: summary.userId,
        username: summary.username,
        created_at: summary.createdAt.toISOString(),
        record_count: summary.recordCount,
        total_bytes: summary.totalBytes,
      };
    },
  );

  app.post(
    '/users/:user_id/token',
    {
      schema: {
        tags: ['users'],
        summary: 'Replace the access token',
        description:
          'Issues a new access token, authenticated with the current one, which stops working at once. ' +
          'The new token is shown only in this answer. Use it after a token leaked.',
        params: UserParams,
        querystring: TokenOnlyQuery,
        security: TOKEN_SECURITY,
        response: { 200: NewAccessToken, ...problemResponses(400, 401, 503) },
      },
      config: { auth: 'owner' },
    },
    async (request) => {
      const rotated = await accounts.rotateToken(userOf(request));
      return { user_id: rotated.userId, access_token: rotated.accessToken };
    },
  );

  app.delete(
    '/users/:user_id',
    {
      schema: {
        tags: ['users'],
        summary: 'Delete the account',
        description:
          'Deletes the user, every record and every MP3 file. Their `record_url`s answer 404 and the token ' +
          'stops working. This cannot be undone.',
        params: UserParams,
        querystring: TokenOnlyQuery,
        security: TOKEN_SECURITY,
        response: { 204: { description: 'Deleted.', type: 'null' }, ...problemResponses(400, 401, 503) },
      },
      config: { auth: 'owner' },
    },
    async (request, reply) => {
      await accounts.delete(userOf(request), request.log);
      return reply.code(204).send(null);
    },
  );
};
