import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Config } from '../../config.js';
import type { RecordingService } from '../../services/recordings.js';
import {
  ListRecordsQuery,
  OwnerQuery,
  PeaksResponse,
  RecordListResponse,
  RecordMetadata,
  RecordParams,
  RecordUrl,
  RenameRecordBody,
  UploadQuery,
} from '../api-schemas.js';
import { toAudiowaveformJson } from '../../media/peaks.js';
import { userOf } from '../auth.js';
import type { RecordViews } from '../record-views.js';
import { problemResponses, TOKEN_SECURITY } from '../route-options.js';
import { uploadForm } from '../upload-form.js';

const AUTH_NOTE =
  'Authenticate as the owner with `Authorization: Bearer <token>` (preferred) or `access_token`. ' +
  'Another user’s token gets the same 401 as a wrong one; another user’s record the same 404 as a missing one.';

/** A user's recordings: upload, list, inspect, rename, delete. */
export const recordingRoutes: FastifyPluginAsyncTypebox<{
  recordings: RecordingService;
  views: RecordViews;
  config: Config;
}> = async (app, { recordings, views, config }) => {
  app.post(
    '/record/',
    {
      schema: {
        tags: ['records'],
        summary: 'Upload a recording',
        description:
          'Converts the multipart field `file` and stores it: WAV, FLAC, Ogg (Opus, Vorbis, FLAC), ' +
          'WebM/Matroska, MP4/M4A/3GP, MP3, AIFF or AMR, judged from its bytes. The output is MP3 unless the ' +
          'options say otherwise; as multipart fields they must come before the file part. Authenticate with ' +
          '`Authorization: Bearer <token>` (preferred) or the `access_token` query parameter.',
        consumes: ['multipart/form-data'],
        querystring: UploadQuery,
        security: TOKEN_SECURITY,
        response: { 200: RecordUrl, ...problemResponses(400, 401, 408, 413, 415, 422, 429, 503, 507) },
      },
      config: { auth: 'owner', streamedBody: true },
      // A full service refuses at once, before the database or the body: the cheapest possible 503.
      onRequest: async () => recordings.refuseIfBusy(),
    },
    async (request) => {
      const { title, format, quality, bitrate, channels, sample_rate, normalize } = request.query;
      const record = await recordings.upload(userOf(request), uploadForm(request, config), {
        title,
        output: { format, quality, bitrate, channels, sample_rate, normalize },
      });
      return { record_url: views.urlOf(request, app.prefix, record) };
    },
  );

  app.get(
    '/records',
    {
      schema: {
        tags: ['records'],
        summary: 'List a user’s records',
        description:
          'The user’s records, newest first, a page at a time. Pass `next_cursor` back as `cursor` for the ' +
          'next page until it is null; pages stay consistent while records are added or deleted (no record ' +
          'shows twice or is skipped). `q` keeps records whose title contains it, ignoring case. ' +
          AUTH_NOTE,
        querystring: ListRecordsQuery,
        security: TOKEN_SECURITY,
        response: { 200: RecordListResponse, ...problemResponses(400, 401, 503) },
      },
      config: { auth: 'owner' },
    },
    async (request) => {
      const list = await recordings.list(userOf(request), {
        limit: request.query.limit,
        cursor: request.query.cursor,
        titleContains: request.query.q,
      });
      return {
        records: list.records.map((record) => views.metadataOf(request, app.prefix, record)),
        next_cursor: list.nextCursor,
      };
    },
  );

  app.get(
    '/records/:record_id',
    {
      schema: {
        tags: ['records'],
        summary: 'Get one record’s metadata',
        description: 'The same fields as one item of the list. ' + AUTH_NOTE,
        params: RecordParams,
        querystring: OwnerQuery,
        security: TOKEN_SECURITY,
        response: { 200: RecordMetadata, ...problemResponses(400, 401, 404, 503) },
      },
      config: { auth: 'owner' },
    },
    async (request) => {
      const record = await recordings.get(userOf(request), request.params.record_id.toLowerCase());
      return views.metadataOf(request, app.prefix, record);
    },
  );

  app.patch(
    '/records/:record_id',
    {
      schema: {
        tags: ['records'],
        summary: 'Rename a record',
        description:
          'Sets the title (JSON body `{"title": "…"}`; null or blank removes it) and answers the updated ' +
          'record. Downloads are then named after the new title. ' +
          AUTH_NOTE,
        params: RecordParams,
        querystring: OwnerQuery,
        body: RenameRecordBody,
        security: TOKEN_SECURITY,
        response: { 200: RecordMetadata, ...problemResponses(400, 401, 404, 503) },
      },
      config: { auth: 'owner' },
    },
    async (request) => {
      const record = await recordings.rename(
        userOf(request),
        request.params.record_id.toLowerCase(),
        request.body.title,
      );
      return views.metadataOf(request, app.prefix, record);
    },
  );

  app.get(
    '/records/:record_id/peaks',
    {
      schema: {
        tags: ['records'],
        summary: 'Waveform peaks of a record',
        description:
          'The peaks a player draws without downloading the audio: BBC audiowaveform’s JSON format, 50 ' +
          'min/max pairs per second. ' +
          AUTH_NOTE,
        params: RecordParams,
        querystring: OwnerQuery,
        security: TOKEN_SECURITY,
        response: { 200: PeaksResponse, ...problemResponses(400, 401, 404, 503) },
      },
      config: { auth: 'owner' },
    },
    async (request) => {
      const record = await recordings.get(userOf(request), request.params.record_id.toLowerCase());
      return toAudiowaveformJson(await recordings.peaks(record));
    },
  );

  app.delete(
    '/records/:record_id',
    {
      schema: {
        tags: ['records'],
        summary: 'Delete a record',
        description:
          'Deletes the record and its MP3; its `record_url` then answers 404. A download already under way ' +
          'completes. ' +
          AUTH_NOTE,
        params: RecordParams,
        querystring: OwnerQuery,
        security: TOKEN_SECURITY,
        response: { 204: { description: 'Deleted.', type: 'null' }, ...problemResponses(400, 401, 404, 503) },
      },
      config: { auth: 'owner' },
    },
    async (request, reply) => {
      await recordings.delete(userOf(request), request.params.record_id.toLowerCase(), request.log);
      return reply.code(204).send(null);
    },
  );
};
