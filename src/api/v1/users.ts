import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { UsernameTakenError } from '../../db/users.js';
import { conflict } from '../../errors.js';
import { issueToken } from '../auth.js';
import { CreatedUser, CreateUserQuery, MAX_USERNAME_LENGTH, ProblemDetails } from '../schemas.js';
import { cleanText } from '../text.js';
import type { Services } from './services.js';

export const userRoutes: FastifyPluginAsyncTypebox<{ services: Services; hidden: boolean }> = async (app, options) => {
  const { users } = options.services;

  app.post(
    '/users/',
    {
      schema: {
        hide: options.hidden,
        tags: ['users'],
        summary: 'Create a user',
        description: 'Creates a user and returns its id and access token. The token is shown only once.',
        querystring: CreateUserQuery,
        response: { 200: CreatedUser, 400: ProblemDetails, 409: ProblemDetails, 503: ProblemDetails },
      },
    },
    async (request) => {
      const username = cleanText(request.query.username, 'username', MAX_USERNAME_LENGTH);
      const userId = randomUUID();
      const { token, hash } = issueToken();
      try {
        await users.create({ id: userId, username, accessTokenHash: hash });
      } catch (error) {
        if (error instanceof UsernameTakenError) throw conflict(`The username "${username}" is already taken.`);
        throw error;
      }
      return { user_id: userId, access_token: token };
    },
  );
};
