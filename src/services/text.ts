import { InvalidInput } from '../domain/errors.js';

// Control, format, surrogate, private-use and unassigned code points: invisible or unsafe in names and headers.
const UNSAFE_CHARACTERS = /\p{C}/u;

/**
 * Normalises user-supplied text (NFC, trimmed) and checks it: 1 to `maxLength` characters (code points,
 * not UTF-16 units), nothing invisible. Anything else is InvalidInput naming the parameter.
 */
export function cleanText(value: string, name: string, maxLength: number): string {
  const text = value.normalize('NFC').trim();
  const length = [...text].length;
  if (length === 0) throw new InvalidInput(`${name} must not be empty.`);
  if (length > maxLength) throw new InvalidInput(`${name} must be at most ${maxLength} characters long.`);
  if (UNSAFE_CHARACTERS.test(text)) throw new InvalidInput(`${name} must not contain control or invisible characters.`);
  return text;
}

/** Like cleanText, but absent or blank text means "none". */
export function cleanOptionalText(value: string | undefined, name: string, maxLength: number): string | null {
  if (value === undefined || value.trim() === '') return null;
  return cleanText(value, name, maxLength);
}

/** The last path segment of an uploaded file name, without control characters; for display only. */
export function cleanFilename(filename: string | undefined): string | null {
  const name = filename?.split(/[/\\]/).pop()?.replace(/\p{C}/gu, '').trim();
  // Cut by code points, so that a character outside the BMP is never split into a lone surrogate.
  const base = name === undefined ? undefined : [...name].slice(0, 255).join('');
  return base === undefined || base === '' ? null : base;
}
