import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { RecordRow } from '../../db/schema.js';
import { badRequest, notFound, unauthorized } from '../../errors.js';
import { isForeignKeyViolation } from '../../db/errors.js';
import { authenticate, presentedToken } from '../auth.js';
import { checkUploadQuota, insertWithinQuota } from '../quota.js';
import { DownloadQuery, MAX_TITLE_LENGTH, ProblemDetails, RecordMetadata, RecordUrl, UploadQuery } from '../schemas.js';
import { sendFile } from '../send-file.js';
import { cleanOptionalText } from '../text.js';
import { receiveRecording } from '../upload.js';
import { publicBase, recordUrl } from '../urls.js';
import type { Services } from './services.js';

const MP3 = 'audio/mpeg';
const JSON_TYPE = 'application/json';

export const recordRoutes: FastifyPluginAsyncTypebox<{ services: Services; hidden: boolean }> = async (
  app,
  options,
) => {
  const { config, users, records, storage, pipeline, limiter } = options.services;
  const urlOf = (request: FastifyRequest, recordId: string, userId: string) =>
    recordUrl(publicBase(config.publicUrl, request), app.prefix, recordId, userId);

  app.post(
    '/record/',
    {
      schema: {
        hide: options.hidden,
        tags: ['records'],
        summary: 'Upload a WAV recording',
        description:
          'Converts the multipart field `file` (a WAV) to MP3 and stores it. Authenticate with ' +
          '`Authorization: Bearer <token>` (preferred) or the `access_token` query parameter.',
        consumes: ['multipart/form-data'],
        querystring: UploadQuery,
        security: [{ bearer: [] }, { accessToken: [] }],
        response: {
          200: RecordUrl,
          ...Object.fromEntries([400, 401, 413, 415, 422, 503].map((status) => [status, ProblemDetails])),
        },
      },
    },
    async (request) => {
      // A full service refuses at once, before the database or the body: the cheapest possible 503.
      limiter.refuseIfFull();
      const userId = request.query.user_id.toLowerCase();
      await authenticate(users, userId, presentedToken(request, request.query.access_token));
      const queryTitle = cleanOptionalText(request.query.title, 'title', MAX_TITLE_LENGTH);
      // A user with no room left is refused before the body is read; the exact size is checked at the insert.
      await checkUploadQuota(records, config.quota, userId);

      // Admission is decided before a byte of the body is read; waiting here holds no upload in memory.
      const release = await limiter.acquire(abortSignalOf(request));
      const recordId = randomUUID();
      try {
        const received = await receiveRecording(request, recordId, { pipeline, storage }, config);
        try {
          await insertWithinQuota(records, config.quota, {
            userId,
            recordId,
            title: received.titleField ?? queryTitle,
            originalFilename: received.originalFilename,
            ...received.converted,
          });
        } catch (error) {
          await storage.remove(recordId);
          // The account was deleted while its upload converted: the token no longer names a user.
          if (isForeignKeyViolation(error)) throw unauthorized();
          throw error;
        }
      } finally {
        release();
      }
      return { record_url: urlOf(request, recordId, userId) };
    },
  );

  app.get(
    '/record',
    {
      schema: {
        hide: options.hidden,
        tags: ['records'],
        summary: 'Download a recording',
        description:
          'Streams the MP3 (with Range and conditional requests). No token is needed: the two ids are the ' +
          'capability. A client whose `Accept` prefers `application/json` gets the record’s metadata instead.',
        querystring: DownloadQuery,
        produces: [MP3, JSON_TYPE],
        response: {
          200: {
            description: 'The MP3, or its metadata as JSON.',
            content: {
              [MP3]: { schema: { type: 'string', format: 'binary' } },
              [JSON_TYPE]: { schema: RecordMetadata },
            },
          },
          206: {
            description: 'One byte range of the MP3.',
            content: { [MP3]: { schema: { type: 'string', format: 'binary' } } },
          },
          304: { description: 'Not modified.', type: 'null' },
          400: ProblemDetails,
          404: ProblemDetails,
          416: ProblemDetails,
        },
      },
    },
    async (request, reply) => {
      const recordId = request.query.record_id.toLowerCase();
      const userId = request.query.user_id.toLowerCase();
      const record = await records.findOwned(recordId, userId);
      if (record === undefined) throw notFound('No such record for this user.');

      // The same URL answers audio or JSON depending on Accept: shared caches must keep them apart.
      reply.header('vary', 'Accept');
      if (request.accepts().type([MP3, JSON_TYPE]) === JSON_TYPE) {
        return reply.type(JSON_TYPE).send(metadataOf(record, urlOf(request, recordId, userId)));
      }
      const file = await storage.open(recordId);
      if (file === undefined) {
        // A delete may have removed row and file since the lookup; only a row still there is an inconsistency.
        if ((await records.findOwned(recordId, userId)) !== undefined) {
          request.log.error({ recordId }, 'record row without its audio file');
        }
        throw notFound('No such record for this user.');
      }
      return sendFile(request, reply, {
        file,
        contentType: MP3,
        etag: `"${record.recordId}"`,
        downloadName: downloadNameOf(record),
      });
    },
  );
};

export function metadataOf(record: RecordRow, url: string): RecordMetadata {
  return {
    record_url: url,
    record_id: record.recordId,
    user_id: record.userId,
    title: record.title,
    original_filename: record.originalFilename,
    created_at: record.createdAt.toISOString(),
    duration_seconds: record.durationMs / 1000,
    size_bytes: record.sizeBytes,
    sample_rate: record.sampleRate,
    channels: record.channels,
    bitrate_kbps: Math.round(record.bitrate / 1000),
  };
}

/** The title, else the uploaded name, else the id; always ending in .mp3 and never holding a path. */
function downloadNameOf(record: RecordRow): string {
  const stem = record.title ?? record.originalFilename?.replace(/\.(wav|wave|bwf|rf64)$/i, '') ?? record.recordId;
  const name = stem.replace(/[/\\]/g, '_');
  return /\.mp3$/i.test(name) ? name : `${name}.mp3`;
}

function abortSignalOf(request: FastifyRequest): AbortSignal {
  const controller = new AbortController();
  request.raw.once('close', () => {
    if (!request.raw.complete)
      controller.abort(badRequest('The client closed the connection before its upload started.'));
  });
  return controller.signal;
}
