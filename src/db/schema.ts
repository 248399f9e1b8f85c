import { sql } from 'drizzle-orm';
import {
  bigint,
  customType,
  index,
  integer,
  pgTable,
  real,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

// postgres.js hands bytea back as a Buffer and PGlite as a Uint8Array; both are bytes.
const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({ dataType: () => 'bytea' });

export const users = pgTable(
  'users',
  {
    id: uuid('id_').primaryKey(),
    username: text('username').notNull(),
    // SHA-256 of the access token, hex. The plain token is shown once and never stored.
    accessTokenHash: text('access_token_hash').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (table) => [
    uniqueIndex('users_username_lower_key').on(sql`lower(${table.username})`),
    uniqueIndex('users_access_token_hash_key').on(table.accessTokenHash),
  ],
);

export const records = pgTable(
  'records',
  {
    id: integer('id_').primaryKey().generatedAlwaysAsIdentity(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    recordId: uuid('record_id').notNull().unique(),
    title: text('title'),
    originalFilename: text('original_filename'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull(),
    durationMs: integer('duration_ms').notNull(),
    sampleRate: integer('sample_rate').notNull(),
    channels: smallint('channels').notNull(),
    bitrate: integer('bitrate').notNull(),
    // The stored audio's format (also its file extension) and Content-Type; rows from before formats were
    // chosen are MP3.
    format: text('format').notNull().default('mp3'),
    mimeType: text('mime_type').notNull().default('audio/mpeg'),
    // What the upload was, by its bytes (see media/input-kinds.ts); rows from before other inputs were WAV.
    sourceFormat: text('source_format').notNull().default('wav'),
    // Integrated loudness of the stored audio, when it was normalised (and so measured).
    loudnessLufs: real('loudness_lufs'),
  },
  (table) => [index('records_user_created_idx').on(table.userId, table.createdAt.desc(), table.id.desc())],
);

/** Each record's waveform overview, kept apart so that listing records never reads it. */
export const recordPeaks = pgTable('record_peaks', {
  recordId: uuid('record_id')
    .primaryKey()
    .references(() => records.recordId, { onDelete: 'cascade' }),
  sampleRate: integer('sample_rate').notNull(),
  samplesPerPixel: integer('samples_per_pixel').notNull(),
  // Interleaved min/max pairs of signed 8-bit samples.
  data: bytea('data').notNull(),
});

export type UserRow = typeof users.$inferSelect;
export type RecordRow = typeof records.$inferSelect;
export type NewRecordRow = typeof records.$inferInsert;
/** A record's peaks as stored. */
export type PeaksRow = Omit<typeof recordPeaks.$inferInsert, 'recordId'>;
/** What locates a record's audio in the blob store. */
export type StoredAudioRef = Pick<RecordRow, 'recordId' | 'format'>;

/**
 * Fixed-window counters shared by every replica on one PostgreSQL (rate limits, failed authentications).
 * UNLOGGED (set in the migration; Drizzle cannot say it): no WAL traffic for every counted request, and
 * after a crash PostgreSQL empties the table, which only forgets some counts.
 */
export const hitCounters = pgTable('hit_counters', {
  key: text('key').primaryKey(),
  hits: integer('hits').notNull(),
  windowEndsAt: timestamp('window_ends_at', { withTimezone: true }).notNull(),
});
