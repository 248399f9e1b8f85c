import type { RecordPosition } from '../db/records.js';
import { InvalidInput } from '../domain/errors.js';

// created_at exactly as the database keeps it: UTC with microseconds.
const EXACT_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const MAX_ROW_ID = 2 ** 31 - 1;

/**
 * Cursors are opaque to clients: base64url of `[created_at, id_]` of the last record of a page. They
 * carry a position, not a user, so a cursor is harmless in anyone's hands: the list is always the
 * authenticated user's.
 */
export function encodeCursor(position: RecordPosition): string {
  return Buffer.from(JSON.stringify([position.createdAt, position.id]), 'utf8').toString('base64url');
}

/** The position in `cursor`; InvalidInput for anything this service did not produce. */
export function decodeCursor(cursor: string): RecordPosition {
  const invalid = () => new InvalidInput('cursor is not a next_cursor this service gave out.');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(decoded) || decoded.length !== 2) throw invalid();
  const createdAt: unknown = decoded[0];
  const id: unknown = decoded[1];
  if (typeof createdAt !== 'string' || !isExactTimestamp(createdAt)) throw invalid();
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > MAX_ROW_ID) throw invalid();
  // Node's decoder skips characters outside the alphabet: only the exact encoding of a position is a cursor.
  if (encodeCursor({ createdAt, id }) !== cursor) throw invalid();
  return { createdAt, id };
}

/** Well-formed and a real instant (no 31 February), so the database never sees a timestamp it rejects. */
function isExactTimestamp(text: string): boolean {
  if (!EXACT_TIMESTAMP.test(text)) return false;
  const milliseconds = `${text.slice(0, 23)}Z`;
  const parsed = new Date(milliseconds);
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString() === milliseconds;
}
