import type { FastifyRequest } from 'fastify';
import { DomainError, InvalidInput, UploadTooLarge } from '../domain/errors.js';
import { isOutputOptionName, type RawOutputOptions } from '../services/output-options.js';
import { cleanTitle, MAX_TITLE_LENGTH, type AudioSink, type UploadSource } from '../services/recordings.js';
import { guardUploadBody } from './upload-guard.js';
import { clientKey } from './protection.js';

export interface UploadFormLimits {
  readonly maxUploadBytes: number;
  readonly uploadIdleTimeoutMs: number;
  /** The whole body must arrive within this time from admission (a conversion's time limit). */
  readonly convertTimeoutMs: number;
  readonly uploadMinBytesPerSecond: number;
  readonly uploadRateWindowMs: number;
}

const FILE_FIELD = 'file';
// Files under other names are read and dropped; a form has no reason to carry a large one.
const IGNORED_FILE_MAX_BYTES = 64 * 1024;
const TITLE_FIELD = 'title';

/** The multipart/form-data body of an upload request, as the recording service reads uploads. */
export function uploadForm(request: FastifyRequest, limits: UploadFormLimits): UploadSource {
  return {
    signal: abortSignalOf(request),
    clientAddress: clientKey(request),
    receive: (sink) => receiveForm(request, sink, limits),
  };
}

async function receiveForm(
  request: FastifyRequest,
  sink: AudioSink,
  limits: UploadFormLimits,
): Promise<{ title: string | null }> {
  if (!request.isMultipart()) {
    throw new InvalidInput('Send the recording as multipart/form-data with a "file" field.');
  }
  let title: string | null = null;
  const options: RawOutputOptions = {};
  let fileSeen = false;
  const stopGuard = guardUploadBody(request, {
    idleTimeoutMs: limits.uploadIdleTimeoutMs,
    deadlineMs: limits.convertTimeoutMs,
    minBytesPerSecond: limits.uploadMinBytesPerSecond,
    rateWindowMs: limits.uploadRateWindowMs,
  });
  try {
    const parts = asClientErrors(() =>
      request.parts({
        // Two files, so that a second one reaches the loop below and is refused as a malformed form.
        limits: { fileSize: limits.maxUploadBytes, files: 2, fields: 8, parts: 16, fieldSize: 4096, headerPairs: 16 },
      }),
    );
    for await (const part of parts) {
      if (part.type === 'field') {
        // Other fields are ignored, so only a cut-off title matters; it is an overlong parameter like any other.
        if (part.fieldname === TITLE_FIELD) {
          if (part.valueTruncated) throw new InvalidInput(`title must be at most ${MAX_TITLE_LENGTH} characters long.`);
          title = cleanTitle(String(part.value));
        } else if (isOutputOptionName(part.fieldname)) {
          // The conversion starts as the file streams in, so it cannot take an option that comes later.
          if (fileSeen) {
            throw new InvalidInput(`The "${part.fieldname}" field must come before the file part.`);
          }
          options[part.fieldname] = String(part.value);
        }
        continue;
      }
      if (part.fieldname !== FILE_FIELD) {
        // Ignored like other fields, but without the upload's own size allowance.
        let ignoredBytes = 0;
        for await (const data of asClientErrors<Buffer>(() => part.file)) {
          ignoredBytes += data.length;
          if (ignoredBytes > IGNORED_FILE_MAX_BYTES) {
            throw new UploadTooLarge(
              `The form's "${part.fieldname}" file is larger than ${IGNORED_FILE_MAX_BYTES} bytes.`,
            );
          }
        }
        continue;
      }
      if (fileSeen) throw new InvalidInput('The form has more than one "file" part; send one recording per upload.');
      fileSeen = true;
      const { file } = part;
      // Busboy ends a file quietly at the size limit; turn that into an error before the truncated tail converts.
      file.once('limit', () => {
        file.destroy(new UploadTooLarge(`The upload is larger than the limit of ${limits.maxUploadBytes} bytes.`));
      });
      await sink(
        asClientErrors(() => file),
        { filename: part.filename, title, options: { ...options } },
      );
    }
  } finally {
    stopGuard();
  }
  return { title };
}

/**
 * Passes `source` through, turning its own failures (a body that is not valid multipart, or that ends
 * early) into InvalidInput: they are the client's doing, not the server's. Domain errors and the multipart
 * plugin's own client errors (its limits) stay as they are.
 */
async function* asClientErrors<T>(source: () => AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* source();
  } catch (error) {
    if (error instanceof DomainError || hasClientStatus(error)) throw error;
    throw new InvalidInput('The multipart body is malformed or ends before its closing boundary.', { cause: error });
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

function abortSignalOf(request: FastifyRequest): AbortSignal {
  const controller = new AbortController();
  request.raw.once('close', () => {
    if (!request.raw.complete)
      controller.abort(new InvalidInput('The client closed the connection before its upload started.'));
  });
  return controller.signal;
}
