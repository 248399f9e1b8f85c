import type { FastifyRequest } from 'fastify';
import type { AudioPipeline, ConvertedRecording } from '../audio/pipeline.js';
import { badRequest, tooLarge } from '../errors.js';
import type { LocalStorage } from '../storage/local.js';
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
  try {
    const parts = request.parts({
      limits: { fileSize: limits.maxUploadBytes, files: 1, fields: 8, parts: 16, fieldSize: 4096, headerPairs: 16 },
    });
    for await (const part of parts) {
      if (part.type === 'field') {
        if (part.valueTruncated) throw tooLarge(`The form field "${part.fieldname}" is too long.`);
        if (part.fieldname === TITLE_FIELD)
          titleField = cleanOptionalText(String(part.value), 'title', MAX_TITLE_LENGTH);
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
      converted = await dependencies.pipeline.convert(file, recordId);
      originalFilename = cleanFilename(part.filename);
    }
  } catch (error) {
    if (converted !== undefined) await dependencies.storage.remove(recordId);
    throw error;
  }
  if (converted === undefined) throw badRequest('The form has no "file" part with the WAV.');
  return { converted, originalFilename, titleField };
}
