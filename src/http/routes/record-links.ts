import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RecordingService } from '../../services/recordings.js';
import type { BlobInfo } from '../../storage/blob-store.js';
import { DownloadQuery, PeaksResponse, RecordMetadata } from '../api-schemas.js';
import { inlineDisposition, sendFile } from '../file-response.js';
import { toAudiowaveformJson } from '../../media/peaks.js';
import { downloadNameOf, PEAKS_PATH, type RecordViews } from '../record-views.js';
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
        'capability. A client whose `Accept` prefers `application/json` gets the record’s metadata instead. ' +
        'With audio in an object store and `S3_DOWNLOAD=redirect`, the answer is a 302 to a short-lived ' +
        'presigned URL of the store, which answers the same type and disposition.',
      querystring: DownloadQuery,
      produces: ['audio/mpeg', JSON_TYPE],
      response: {
        200: {
          description: 'The MP3, or its metadata as JSON.',
          content: { 'audio/mpeg': AUDIO, [JSON_TYPE]: { schema: RecordMetadata } },
        },
        206: { description: 'One byte range of the MP3.', content: { 'audio/mpeg': AUDIO } },
        302: {
          description: 'The audio, at a presigned URL of the object store (`S3_DOWNLOAD=redirect`).',
          type: 'null',
        },
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
      const downloadName = downloadNameOf(record);
      // A presigned URL is signed for GET only (a HEAD there is refused by the store): HEAD is answered here.
      const location =
        request.method === 'GET'
          ? await recordings.downloadLocation(record, {
              contentType: record.mimeType,
              contentDisposition: inlineDisposition(downloadName),
            })
          : undefined;
      if (location !== undefined) {
        // The URL changes every few minutes: this answer must not be kept; the store's own answer may be.
        return reply.code(302).header('location', location).header('cache-control', 'no-store').send();
      }
      const file = await recordings.openAudio(record, request.log);
      return sendFile(request, reply, {
        file,
        contentType: record.mimeType,
        etag: audioEtag(record.recordId, file),
        downloadName,
      });
    },
  });

  app.get(
    PEAKS_PATH,
    {
      schema: {
        tags: ['records'],
        summary: 'Waveform peaks of a recording',
        description:
          'The peaks a player draws without downloading the audio, in BBC audiowaveform’s JSON format. No ' +
          'token is needed: the two ids are the capability, as for `record_url`.',
        querystring: DownloadQuery,
        response: { 200: PeaksResponse, ...problemResponses(400, 404, 503) },
      },
    },
    async (request) => {
      const record = await recordings.findByLink(
        request.query.record_id.toLowerCase(),
        request.query.user_id.toLowerCase(),
      );
      return toAudiowaveformJson(await recordings.peaks(record));
    },
  );
};

/**
 * Strong, and the same from every process that serves the file: the record, and the size and time of the
 * bytes stored for it (a rename rewrites them with a new tag). For an object store the time is the
 * object's Last-Modified, which every replica reads alike.
 */
function audioEtag(recordId: string, file: BlobInfo): string {
  return `"${recordId}-${file.sizeBytes.toString(36)}-${file.modifiedAt.getTime().toString(36)}"`;
}
