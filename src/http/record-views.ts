import type { FastifyRequest } from 'fastify';
import type { RecordRow } from '../db/schema.js';
import type { RecordMetadata } from './api-schemas.js';
import { publicBase, recordUrl } from './urls.js';

/** How records are shown to clients: their link and their metadata. */
export class RecordViews {
  constructor(private readonly publicUrl: string | undefined) {}

  /** The record's link, under the API prefix the request came in on. */
  urlOf(request: FastifyRequest, prefix: string, record: Pick<RecordRow, 'recordId' | 'userId'>): string {
    return recordUrl(publicBase(this.publicUrl, request), prefix, record.recordId, record.userId);
  }

  metadataOf(request: FastifyRequest, prefix: string, record: RecordRow): RecordMetadata {
    return {
      record_url: this.urlOf(request, prefix, record),
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
}

/** The title, else the uploaded name, else the id; always ending in the format's extension, never a path. */
export function downloadNameOf(record: RecordRow): string {
  const extension = `.${record.format}`;
  const stem = record.title ?? record.originalFilename?.replace(/\.(wav|wave|bwf|rf64)$/i, '') ?? record.recordId;
  const name = stem.replace(/[/\\]/g, '_');
  return name.toLowerCase().endsWith(extension) ? name : `${name}${extension}`;
}
