import { describe, expect, it } from 'vitest';
import { InvalidInput } from '../../src/domain/errors.js';
import { cleanFilename, cleanOptionalText, cleanText } from '../../src/services/text.js';

describe('cleanText', () => {
  it('normalises to NFC and trims', () => {
    const cleaned = cleanText('  Cafe\u0301 \t\n', 'title', 10);
    expect(cleaned).toBe('Caf\u00e9');
    expect(cleaned).toHaveLength(4);
  });

  it('counts code points, not UTF-16 units', () => {
    expect(cleanText('😀😀😀', 'title', 3)).toBe('😀😀😀');
    expect(() => cleanText('😀😀😀😀', 'title', 3)).toThrow(InvalidInput);
  });

  it('counts the length after normalisation', () => {
    // Three decomposed é are six code points, three after NFC.
    expect(cleanText('e\u0301e\u0301e\u0301', 'title', 3)).toBe('\u00e9\u00e9\u00e9');
  });

  it('counts the length after trimming', () => {
    expect(cleanText(`  ${'a'.repeat(64)}  `, 'username', 64)).toBe('a'.repeat(64));
    expect(() => cleanText('a'.repeat(65), 'username', 64)).toThrow('username must be at most 64 characters long.');
  });

  it.each(['', '   ', '\t\n'])('rejects empty text %j, naming the parameter', (value) => {
    expect(() => cleanText(value, 'username', 64)).toThrow(new InvalidInput('username must not be empty.'));
  });

  it.each([
    ['NUL', 'a\u0000b'],
    ['BEL', 'a\u0007b'],
    ['an inner tab', 'a\tb'],
    ['an inner newline', 'a\nb'],
    ['DEL', 'a\u007fb'],
    ['a C1 control', 'a\u0085b'],
    ['zero-width space', 'a\u200bb'],
    ['right-to-left override', 'abc\u202etxt.exe'],
    ['a lone surrogate', 'a\ud800b'],
    ['private use', 'a\ue000b'],
    ['unassigned', 'a\u0378b'],
    ['a zero-width space alone', '\u200b'],
  ])('rejects %s', (_name, value) => {
    expect(() => cleanText(value, 'title', 200)).toThrow('title must not contain control or invisible characters.');
  });

  it('keeps ordinary non-ASCII text', () => {
    expect(cleanText('Ünïcödé 日本語 🎵 — ok', 'title', 200)).toBe('Ünïcödé 日本語 🎵 — ok');
  });
});

describe('cleanOptionalText', () => {
  it('absent or blank is none', () => {
    expect(cleanOptionalText(undefined, 'title', 10)).toBeNull();
    expect(cleanOptionalText('', 'title', 10)).toBeNull();
    expect(cleanOptionalText('  \t ', 'title', 10)).toBeNull();
  });

  it('otherwise is checked like cleanText', () => {
    expect(cleanOptionalText('  hi ', 'title', 10)).toBe('hi');
    expect(() => cleanOptionalText('x'.repeat(11), 'title', 10)).toThrow(InvalidInput);
    expect(() => cleanOptionalText('a\u0000', 'title', 10)).toThrow(InvalidInput);
  });
});

describe('cleanFilename', () => {
  it.each([
    ['song.wav', 'song.wav'],
    ['/home/me/song.wav', 'song.wav'],
    ['C:\\Users\\me\\song.wav', 'song.wav'],
    ['../../etc/passwd', 'passwd'],
    ['..\\..\\boot.ini', 'boot.ini'],
    ['mixed/dir\\name.wav', 'name.wav'],
    ['  spaced.wav  ', 'spaced.wav'],
    ['a\u0000b\u0007c\n.wav', 'abc.wav'],
    ['evil\u202egnp.wav', 'evilgnp.wav'],
    ['Ünïcödé 🎵.wav', 'Ünïcödé 🎵.wav'],
  ])('%j → %j', (input, expected) => {
    expect(cleanFilename(input)).toBe(expected);
  });

  it.each([undefined, '', '   ', 'folder/', 'C:\\folder\\', '\u0000\u0001'])('%j is no name', (input) => {
    expect(cleanFilename(input)).toBeNull();
  });

  it('keeps at most 255 characters', () => {
    expect(cleanFilename(`${'a'.repeat(300)}.wav`)).toBe('a'.repeat(255));
  });

  // Cut at 255 UTF-16 units, an astral character straddling the cut would leave a lone high surrogate, the
  // kind of \p{C} character the function promises to remove.
  it('never leaves a lone surrogate when cutting at 255 characters', () => {
    const cleaned = cleanFilename(`${'a'.repeat(254)}🎵🎵.wav`);
    expect(cleaned).not.toBeNull();
    expect(cleaned).not.toMatch(/\p{Cs}/u);
  });
});
