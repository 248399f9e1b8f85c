import type { FastifyRequest } from 'fastify';
import type { AudioPipeline, ConvertedRecording } from '../audio/pipeline.js';
import { Problem, badRequest, tooLarge } from '../errors.js';
import type { LocalStorage } from '../storage/local.js';
import { cutWhenIdle } from './idle.js';
import { MAX_TITLE_LENGTH } from './schemas.js';
import { cleanFilename, cleanOptionalText } from './text.js';

export interface ReceivedRecording {
  readonly converted: ConvertedRecording;
  readonly originalFilename: string | null;
  /** The multipart `title` field, if one was sent. */
  readonly titleField: string | null;
}

export interface UploadLimits {
  readonly maxUploadBytes: number;
  /** An upload that sends nothing for this long while its body is read is cut with 408. */
  readonly uploadIdleTimeoutMs: number;
}

const FILE_FIELD = 'file';
const TITLE_FIELD = 'title';

/**
 * Reads the multipart body, converting the `file` part while it streams in. On any failure, the MP3
 * already stored for `recordId` (if the failure came after the file) is removed again.
 */
export async function receiveRecording(
  request: FastifyRequest,
  recordId: string,
  dependencies: { pipeline: AudioPipeline; storage: LocalStorage },
  limits: UploadLimits,
): Promise<ReceivedRecording> {
  if (!request.isMultipart()) {
    throw badRequest('Send the WAV as multipart/form-data with a "file" field.');
  }
  let converted: ConvertedRecording | undefined;
  let originalFilename: string | null = null;
  let titleField: string | null = null;
  const stopIdleTimer = cutWhenIdle(request, limits.uploadIdleTimeoutMs);
  try {
    const parts = asClientErrors(() =>
      request.parts({
        limits: { fileSize: limits.maxUploadBytes, files: 1, fields: 8, parts: 16, fieldSize: 4096, headerPairs: 16 },
      }),
    );
    for await (const part of parts) {
      if (part.type === 'field') {
        // Other fields are ignored, so only a cut-off title matters; it is an overlong parameter like any other.
        if (part.fieldname === TITLE_FIELD) {
          if (part.valueTruncated) throw badRequest(`title must be at most ${MAX_TITLE_LENGTH} characters long.`);
          titleField = cleanOptionalText(String(part.value), 'title', MAX_TITLE_LENGTH);
        }
        continue;
      }
      if (part.fieldname !== FILE_FIELD) {
        part.file.resume();
        continue;
      }
      const { file } = part;
      // Busboy ends a file quietly at the size limit; turn that into an error before the truncated tail converts.
      file.once('limit', () => {
        file.destroy(tooLarge(`The upload is larger than the limit of ${limits.maxUploadBytes} bytes.`));
      });
      converted = await dependencies.pipeline.convert(
        asClientErrors(() => file),
        recordId,
      );
      originalFilename = cleanFilename(part.filename);
    }
  } catch (error) {
    if (converted !== undefined) await dependencies.storage.remove(recordId);
    throw error;
  } finally {
    stopIdleTimer();
  }
  if (converted === undefined) throw badRequest('The form has no "file" part with the WAV.');
  return { converted, originalFilename, titleField };
}

/**
 * Passes `source` through, turning its own failures (a body that is not valid multipart, or that ends
 * early) into 400: they are the client's doing, not the server's. Problems and the multipart plugin's
 * own client errors (its limits) keep their status.
 */
async function* asClientErrors<T>(source: () => AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* source();
  } catch (error) {
    if (error instanceof Problem || hasClientStatus(error)) throw error;
    throw new Problem(400, 'The multipart body is malformed or ends before its closing boundary.', { cause: error });
  }
}

function hasClientStatus(error: unknown): boolean {
  return (
    error instanceof Error &&
    'statusCode' in error &&
    typeof error.statusCode === 'number' &&
    error.statusCode >= 400 &&
    error.statusCode < 500
  );
}
