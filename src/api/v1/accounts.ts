import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { unauthorized } from '../../errors.js';
import { authenticate, hashToken, issueToken, presentedToken } from '../auth.js';
import { removeRecordFiles } from '../remove-files.js';
import { CurrentUser, NewAccessToken, ProblemDetails, TokenOnlyQuery, UserParams } from '../schemas.js';
import type { Services } from './services.js';

const security: Array<Record<string, string[]>> = [{ bearer: [] }, { accessToken: [] }];
const problems = (...statuses: number[]) => Object.fromEntries(statuses.map((status) => [status, ProblemDetails]));

/** The account itself: who am I, a new token, and deleting everything. */
export const accountRoutes: FastifyPluginAsyncTypebox<{ services: Services; hidden: boolean }> = async (
  app,
  options,
) => {
  const { users, records, storage } = options.services;

  app.get(
    '/users/me',
    {
      schema: {
        hide: options.hidden,
        tags: ['users'],
        summary: 'Who am I',
        description:
          'The account the token belongs to (no `user_id` needed), with how many records it keeps and how ' +
          'many bytes they take.',
        querystring: TokenOnlyQuery,
        security,
        response: { 200: CurrentUser, ...problems(401, 503) },
      },
    },
    async (request) => {
      const token = presentedToken(request, request.query.access_token);
      if (token === undefined) throw unauthorized();
      const user = await users.findByTokenHash(hashToken(token));
      if (user === undefined) throw unauthorized();
      const usage = await records.usageOf(user.id);
      return {
        user_id: user.id,
        username: user.username,
        created_at: user.createdAt.toISOString(),
        record_count: usage.recordCount,
        total_bytes: usage.totalBytes,
      };
    },
  );

  app.post(
    '/users/:user_id/token',
    {
      schema: {
        hide: options.hidden,
        tags: ['users'],
        summary: 'Replace the access token',
        description:
          'Issues a new access token, authenticated with the current one, which stops working at once. ' +
          'The new token is shown only in this answer. Use it after a token leaked.',
        params: UserParams,
        querystring: TokenOnlyQuery,
        security,
        response: { 200: NewAccessToken, ...problems(400, 401, 503) },
      },
    },
    async (request) => {
      const userId = request.params.user_id.toLowerCase();
      const token = presentedToken(request, request.query.access_token);
      if (token === undefined) throw unauthorized();
      await authenticate(users, userId, token);
      const issued = issueToken();
      // Compare-and-set on the old hash: of two rotations racing with the same token, the loser gets 401.
      if (!(await users.replaceTokenHash(userId, hashToken(token), issued.hash))) throw unauthorized();
      return { user_id: userId, access_token: issued.token };
    },
  );

  app.delete(
    '/users/:user_id',
    {
      schema: {
        hide: options.hidden,
        tags: ['users'],
        summary: 'Delete the account',
        description:
          'Deletes the user, every record and every MP3 file. Their `record_url`s answer 404 and the token ' +
          'stops working. This cannot be undone.',
        params: UserParams,
        querystring: TokenOnlyQuery,
        security,
        response: { 204: { description: 'Deleted.', type: 'null' }, ...problems(400, 401, 503) },
      },
    },
    async (request, reply) => {
      const userId = request.params.user_id.toLowerCase();
      await authenticate(users, userId, presentedToken(request, request.query.access_token));
      // Rows first, in one committed transaction; files after (see the record DELETE for why this order).
      const recordIds = await users.deleteWithRecords(userId);
      if (recordIds === undefined) throw unauthorized(); // deleted meanwhile by a concurrent request
      await removeRecordFiles(storage, recordIds, request.log);
      return reply.code(204).send(null);
    },
  );
};
