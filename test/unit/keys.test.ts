import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRecordKey, recordIdOfKey, recordKey, SHARDS } from '../../src/storage/keys.js';

const ID = '3f2a7c1e-8a8b-4c5d-9e0f-0123456789ab';

describe('recordKey', () => {
  it('is <first two hex digits>/<id>.<extension>', () => {
    expect(recordKey(ID, 'mp3')).toBe(`3f/${ID}.mp3`);
    expect(recordKey(ID, 'opus')).toBe(`3f/${ID}.opus`);
  });

  it.each([
    '',
    'not-a-uuid',
    '../x',
    `../${ID}`,
    `${ID}/..`,
    ID.toUpperCase(),
    `${ID} `,
    ID.slice(0, -1),
    `${ID}0`,
    ID.replaceAll('-', ''),
    '3f2a7c1e_8a8b_4c5d_9e0f_0123456789ab',
  ])('rejects the record id %j', (recordId) => {
    expect(() => recordKey(recordId, 'mp3')).toThrow(/Not a record id/);
  });

  it.each(['', '../x', 'mp3/../x', '.mp3', 'MP3', 'mp 3', 'toolong12', 'mp3/', 'a.b', 'mp3\0'])(
    'rejects the extension %j',
    (extension) => {
      expect(() => recordKey(ID, extension)).toThrow(/Not an extension/);
    },
  );
});

describe('recordIdOfKey', () => {
  it('round-trips every record key (property)', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.stringMatching(/^[a-z0-9]{1,8}$/), (uuid, extension) => {
        const key = recordKey(uuid, extension);
        expect(recordIdOfKey(key)).toBe(uuid);
        expect(isRecordKey(key)).toBe(true);
      }),
    );
    const id = randomUUID();
    expect(recordIdOfKey(recordKey(id, 'mp3'))).toBe(id);
  });

  it.each([
    ['a wrong shard', `ab/${ID}.mp3`],
    ['no shard', `${ID}.mp3`],
    ['a nested folder', `3f/x/${ID}.mp3`],
    ['a trailing slash (a folder)', `3f/${ID}.mp3/`],
    ['no extension', `3f/${ID}`],
    ['an upper-case extension', `3f/${ID}.MP3`],
    ['a copy in progress', `3f/${ID}.mp3.1234.copying`],
    ['a stray name', '3f/readme.txt'],
    ['a dot file', '3f/.DS_Store'],
    ['hex and dashes that are no UUID', `3f/${'3f'.padEnd(36, '-')}.mp3`],
    ['a dashed shape in the wrong places', '3f/3f2a7c1e8-a8b-4c5d-9e0f-0123456789ab.mp3'],
    ['an upper-case id', `3F/${ID.toUpperCase()}.mp3`],
    ['a path traversal', `3f/../${ID}.mp3`],
    ['a leading slash', `/3f/${ID}.mp3`],
    ['an empty key', ''],
  ])('is undefined for %s', (_name, key) => {
    expect(recordIdOfKey(key)).toBeUndefined();
    expect(isRecordKey(key)).toBe(false);
  });
});

describe('SHARDS', () => {
  it('are the 256 two-digit hex prefixes in order', () => {
    expect(SHARDS).toHaveLength(256);
    expect(SHARDS[0]).toBe('00');
    expect(SHARDS[255]).toBe('ff');
    expect(new Set(SHARDS).size).toBe(256);
    expect([...SHARDS].sort()).toEqual(SHARDS);
    expect(SHARDS).toContain(recordKey(ID, 'mp3').slice(0, 2));
  });
});
