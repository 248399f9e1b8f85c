import type { FastifyRequest } from 'fastify';
import type { RecordRow } from '../db/schema.js';
import type { RecordMetadata } from './api-schemas.js';
import { publicBase, recordUrl } from './urls.js';

/** Where a record's peaks are for holders of its link, beside `/record`. */
export const PEAKS_PATH = '/record/peaks';

/** The web app's public page for a record link: its title, player and waveform. */
const SHARE_PAGE_PATH = '/listen';

/** How records are shown to clients: their link and their metadata. */
export class RecordViews {
  constructor(private readonly publicUrl: string | undefined) {}

  /** The record's link, under the API prefix the request came in on. */
  urlOf(request: FastifyRequest, prefix: string, record: Pick<RecordRow, 'recordId' | 'userId'>): string {
    return recordUrl(publicBase(this.publicUrl, request), prefix, record.recordId, record.userId);
  }

  metadataOf(request: FastifyRequest, prefix: string, record: RecordRow): RecordMetadata {
    const base = publicBase(this.publicUrl, request);
    return {
      record_url: recordUrl(base, prefix, record.recordId, record.userId),
      peaks_url: recordUrl(base, prefix, record.recordId, record.userId, PEAKS_PATH),
      share_url: recordUrl(base, '', record.recordId, record.userId, SHARE_PAGE_PATH),
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
      format: record.format,
      mime_type: record.mimeType,
      source_format: record.sourceFormat,
      ...(record.loudnessLufs === null ? {} : { loudness_lufs: Math.round(record.loudnessLufs * 100) / 100 }),
    };
  }
}

// Extensions of the inputs the service reads, dropped from an uploaded name before the stored format's is added.
const UPLOAD_EXTENSION =
  /\.(wav|wave|bwf|rf64|flac|ogg|oga|opus|webm|weba|mka|mkv|mp4|m4a|m4b|3gp|3g2|mov|mp3|aif|aiff|aifc|amr|awb)$/i;

/** The title, else the uploaded name, else the id; always ending in the format's extension, never a path. */
export function downloadNameOf(record: RecordRow): string {
  const extension = `.${record.format}`;
  const stem = record.title ?? record.originalFilename?.replace(UPLOAD_EXTENSION, '') ?? record.recordId;
  const name = stem.replace(/[/\\]/g, '_');
  return name.toLowerCase().endsWith(extension) ? name : `${name}${extension}`;
}
