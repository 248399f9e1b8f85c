import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { RecordRow } from '../../db/schema.js';
import { notFound } from '../../errors.js';
import { authenticate, presentedToken } from '../auth.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { removeRecordFiles } from '../remove-files.js';
import {
  ListRecordsQuery,
  MAX_TITLE_LENGTH,
  OwnerQuery,
  ProblemDetails,
  RecordMetadata,
  RecordPage,
  RecordParams,
  RenameRecordBody,
} from '../schemas.js';
import { cleanOptionalText } from '../text.js';
import { publicBase, recordUrl } from '../urls.js';
import { metadataOf } from './records.js';
import type { Services } from './services.js';

const AUTH_NOTE =
  'Authenticate as the owner with `Authorization: Bearer <token>` (preferred) or `access_token`. ' +
  'Another user’s token gets the same 401 as a wrong one; another user’s record the same 404 as a missing one.';
const security: Array<Record<string, string[]>> = [{ bearer: [] }, { accessToken: [] }];
const problems = (...statuses: number[]) => Object.fromEntries(statuses.map((status) => [status, ProblemDetails]));
const NO_SUCH_RECORD = 'No such record for this user.';

/** Listing, inspecting, renaming and deleting one's records. */
export const recordManagementRoutes: FastifyPluginAsyncTypebox<{ services: Services; hidden: boolean }> = async (
  app,
  options,
) => {
  const { config, users, records, storage } = options.services;
  const describe = (request: FastifyRequest, record: RecordRow) =>
    metadataOf(record, recordUrl(publicBase(config.publicUrl, request), app.prefix, record.recordId, record.userId));

  app.get(
    '/records',
    {
      schema: {
        hide: options.hidden,
        tags: ['records'],
        summary: 'List a user’s records',
        description:
          'The user’s records, newest first, a page at a time. Pass `next_cursor` back as `cursor` for the ' +
          'next page until it is null; pages stay consistent while records are added or deleted (no record ' +
          'shows twice or is skipped). `q` keeps records whose title contains it, ignoring case. ' +
          AUTH_NOTE,
        querystring: ListRecordsQuery,
        security,
        response: { 200: RecordPage, ...problems(400, 401, 503) },
      },
    },
    async (request) => {
      const userId = request.query.user_id.toLowerCase();
      await authenticate(users, userId, presentedToken(request, request.query.access_token));
      const after = request.query.cursor === undefined ? undefined : decodeCursor(request.query.cursor);
      const q = request.query.q?.normalize('NFC').trim();
      const page = await records.listPage(userId, {
        limit: request.query.limit,
        after,
        titleContains: q === '' ? undefined : q,
      });
      return {
        records: page.records.map((record) => describe(request, record)),
        next_cursor: page.next === undefined ? null : encodeCursor(page.next),
      };
    },
  );

  app.get(
    '/records/:record_id',
    {
      schema: {
        hide: options.hidden,
        tags: ['records'],
        summary: 'Get one record’s metadata',
        description: 'The same fields as one item of the list. ' + AUTH_NOTE,
        params: RecordParams,
        querystring: OwnerQuery,
        security,
        response: { 200: RecordMetadata, ...problems(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const userId = request.query.user_id.toLowerCase();
      await authenticate(users, userId, presentedToken(request, request.query.access_token));
      const record = await records.findOwned(request.params.record_id.toLowerCase(), userId);
      if (record === undefined) throw notFound(NO_SUCH_RECORD);
      return describe(request, record);
    },
  );

  app.patch(
    '/records/:record_id',
    {
      schema: {
        hide: options.hidden,
        tags: ['records'],
        summary: 'Rename a record',
        description:
          'Sets the title (JSON body `{"title": "…"}`; null or blank removes it) and answers the updated ' +
          'record. Downloads are then named after the new title. ' +
          AUTH_NOTE,
        params: RecordParams,
        querystring: OwnerQuery,
        body: RenameRecordBody,
        security,
        response: { 200: RecordMetadata, ...problems(400, 401, 404, 503) },
      },
    },
    async (request) => {
      const userId = request.query.user_id.toLowerCase();
      await authenticate(users, userId, presentedToken(request, request.query.access_token));
      const title = cleanOptionalText(request.body.title ?? undefined, 'title', MAX_TITLE_LENGTH);
      const record = await records.rename(request.params.record_id.toLowerCase(), userId, title);
      if (record === undefined) throw notFound(NO_SUCH_RECORD);
      return describe(request, record);
    },
  );

  app.delete(
    '/records/:record_id',
    {
      schema: {
        hide: options.hidden,
        tags: ['records'],
        summary: 'Delete a record',
        description:
          'Deletes the record and its MP3; its `record_url` then answers 404. A download already under way ' +
          'completes. ' +
          AUTH_NOTE,
        params: RecordParams,
        querystring: OwnerQuery,
        security,
        response: { 204: { description: 'Deleted.', type: 'null' }, ...problems(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      const userId = request.query.user_id.toLowerCase();
      await authenticate(users, userId, presentedToken(request, request.query.access_token));
      const recordId = request.params.record_id.toLowerCase();
      // The row goes first, in its own committed transaction; the file only after that. A crash in between
      // leaves at worst a file without a row, invisible to every route and removed by the start-up storage
      // check, never a row pointing at a missing file. Downloads that already opened the file keep reading
      // it: an unlinked file lives on until its last handle closes.
      if (!(await records.deleteOwned(recordId, userId))) throw notFound(NO_SUCH_RECORD);
      await removeRecordFiles(storage, [recordId], request.log);
      return reply.code(204).send(null);
    },
  );
};
