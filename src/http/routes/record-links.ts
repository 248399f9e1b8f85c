import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RecordingService } from '../../services/recordings.js';
import { DownloadQuery, RecordMetadata } from '../api-schemas.js';
import { sendFile } from '../file-response.js';
import { downloadNameOf, type RecordViews } from '../record-views.js';
import { problemResponses } from '../route-options.js';

const JSON_TYPE = 'application/json';
const AUDIO = { schema: { type: 'string', format: 'binary' } };

/** The link a record is shared by: its audio, or its metadata for a client that asks for JSON. */
export const recordLinkRoutes: FastifyPluginAsyncTypebox<{ recordings: RecordingService; views: RecordViews }> = async (
  app,
  { recordings, views },
) => {
  app.route({
    method: ['GET', 'HEAD'],
    url: '/record',
    schema: {
      tags: ['records'],
      summary: 'Download a recording',
      description:
        'Streams the MP3 (with Range and conditional requests). No token is needed: the two ids are the ' +
        'capability. A client whose `Accept` prefers `application/json` gets the record’s metadata instead.',
      querystring: DownloadQuery,
      produces: ['audio/mpeg', JSON_TYPE],
      response: {
        200: {
          description: 'The MP3, or its metadata as JSON.',
          content: { 'audio/mpeg': AUDIO, [JSON_TYPE]: { schema: RecordMetadata } },
        },
        206: { description: 'One byte range of the MP3.', content: { 'audio/mpeg': AUDIO } },
        304: { description: 'Not modified.', type: 'null' },
        ...problemResponses(400, 404, 416),
      },
    },
    handler: async (request, reply) => {
      const record = await recordings.findByLink(
        request.query.record_id.toLowerCase(),
        request.query.user_id.toLowerCase(),
      );
      // The same URL answers audio or JSON depending on Accept: shared caches must keep them apart.
      reply.header('vary', 'Accept');
      if (request.accepts().type([record.mimeType, JSON_TYPE]) === JSON_TYPE) {
        return reply.type(JSON_TYPE).send(views.metadataOf(request, app.prefix, record));
      }
      return sendFile(request, reply, {
        file: await recordings.openAudio(record, request.log),
        contentType: record.mimeType,
        etag: `"${record.recordId}"`,
        downloadName: downloadNameOf(record),
      });
    },
  });
};
