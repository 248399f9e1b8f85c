import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { InvalidInput, Unauthorized, UsernameTaken } from '../../src/domain/errors.js';
import { AccountService } from '../../src/services/accounts.js';
import { RecordLinkCache } from '../../src/services/record-link-cache.js';
import { audioKey } from '../../src/services/stored-audio.js';
import { FakeDatabase, FakeRecordRepository, FakeUserRepository, InMemoryBlobStore, RecordingLogger } from './fakes.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** A one-chunk stream, for seeding blobs. */
const readable = (text: string) => Readable.from([Buffer.from(text)]);
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

function setup() {
  const db = new FakeDatabase();
  const users = new FakeUserRepository(db);
  const records = new FakeRecordRepository(db);
  const blobs = new InMemoryBlobStore(db.journal);
  const accounts = new AccountService(users, records, blobs, new RecordLinkCache());
  return { db, users, records, blobs, accounts };
}

describe('AccountService.create', () => {
  it('creates the user and keeps only the hash of the token it returns once', async () => {
    const { db, accounts } = setup();
    const credentials = await accounts.create('alice');
    expect(credentials.userId).toMatch(UUID);
    expect(credentials.accessToken).toMatch(UUID);
    const stored = db.users.get(credentials.userId);
    expect(stored?.username).toBe('alice');
    expect(stored?.accessTokenHash).toBe(sha256(credentials.accessToken));
    expect(JSON.stringify([...db.users.values()])).not.toContain(credentials.accessToken);
  });

  it('stores the username trimmed and in NFC', async () => {
    const { db, accounts } = setup();
    const { userId } = await accounts.create('  Jose\u0301  ');
    expect(db.users.get(userId)?.username).toBe('Jos\u00e9');
  });

  it.each([
    ['empty', ''],
    ['blank', '   '],
    ['65 characters', 'a'.repeat(65)],
    ['a control character', 'al\u0000ice'],
    ['an invisible character', 'al\u200bice'],
  ])('refuses a username that is %s, before touching the repository', async (_name, username) => {
    const { users, accounts } = setup();
    await expect(accounts.create(username)).rejects.toBeInstanceOf(InvalidInput);
    expect(users.calls).toEqual([]);
  });

  it('accepts 64 characters', async () => {
    const { accounts } = setup();
    await expect(accounts.create('ü'.repeat(64))).resolves.toBeDefined();
  });

  it('a taken name is UsernameTaken, naming the cleaned name', async () => {
    const { db, accounts } = setup();
    await accounts.create('alice');
    const attempt = accounts.create('  ALICE ');
    await expect(attempt).rejects.toBeInstanceOf(UsernameTaken);
    await expect(attempt).rejects.toThrow('The username "ALICE" is already taken.');
    expect(db.users.size).toBe(1);
  });
});

describe('AccountService.authenticate', () => {
  it("accepts the user's own token", async () => {
    const { accounts } = setup();
    const { userId, accessToken } = await accounts.create('alice');
    await expect(accounts.authenticate(userId, accessToken)).resolves.toEqual({
      id: userId,
      tokenHash: sha256(accessToken),
    });
  });

  it('refuses a wrong token, an unknown user and another user’s token alike', async () => {
    const { accounts } = setup();
    const alice = await accounts.create('alice');
    const bob = await accounts.create('bob');
    for (const [userId, token] of [
      [alice.userId, 'wrong'],
      [alice.userId, ''],
      [alice.userId, alice.accessToken.toUpperCase()],
      ['00000000-0000-4000-8000-000000000000', alice.accessToken],
      [alice.userId, bob.accessToken],
    ] as const) {
      await expect(accounts.authenticate(userId, token), `${userId} ${token}`).rejects.toBeInstanceOf(Unauthorized);
    }
  });

  it('refuses a missing token without a lookup', async () => {
    const { users, accounts } = setup();
    const { userId } = await accounts.create('alice');
    users.calls.length = 0;
    await expect(accounts.authenticate(userId, undefined)).rejects.toBeInstanceOf(Unauthorized);
    expect(users.calls).toEqual([]);
  });

  it('authenticateToken finds the user by the token alone', async () => {
    const { accounts } = setup();
    const { userId, accessToken } = await accounts.create('alice');
    await expect(accounts.authenticateToken(accessToken)).resolves.toEqual({
      id: userId,
      tokenHash: sha256(accessToken),
    });
    await expect(accounts.authenticateToken('nope')).rejects.toBeInstanceOf(Unauthorized);
    await expect(accounts.authenticateToken(undefined)).rejects.toBeInstanceOf(Unauthorized);
  });
});

describe('AccountService.rotateToken', () => {
  it('issues a new token; the old one stops working at once', async () => {
    const { accounts } = setup();
    const { userId, accessToken } = await accounts.create('alice');
    const user = await accounts.authenticate(userId, accessToken);
    const rotated = await accounts.rotateToken(user);
    expect(rotated.userId).toBe(userId);
    expect(rotated.accessToken).not.toBe(accessToken);
    await expect(accounts.authenticate(userId, accessToken)).rejects.toBeInstanceOf(Unauthorized);
    await expect(accounts.authenticate(userId, rotated.accessToken)).resolves.toMatchObject({ id: userId });
  });

  it('of two rotations with the same token, the loser is Unauthorized', async () => {
    const { accounts } = setup();
    const { userId, accessToken } = await accounts.create('alice');
    const user = await accounts.authenticate(userId, accessToken);
    const results = await Promise.allSettled([accounts.rotateToken(user), accounts.rotateToken(user)]);
    expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
    const loser = results.find((result) => result.status === 'rejected');
    expect(loser?.reason).toBeInstanceOf(Unauthorized);
    const winner = results.find((result) => result.status === 'fulfilled');
    await expect(accounts.authenticate(userId, winner?.value.accessToken)).resolves.toMatchObject({ id: userId });
  });

  it('the summary of a rotated-away token is Unauthorized', async () => {
    const { accounts } = setup();
    const { userId, accessToken } = await accounts.create('alice');
    const user = await accounts.authenticate(userId, accessToken);
    await expect(accounts.summary(user)).resolves.toMatchObject({ userId, username: 'alice', recordCount: 0 });
    await accounts.rotateToken(user);
    await expect(accounts.summary(user)).rejects.toBeInstanceOf(Unauthorized);
  });
});

describe('AccountService.delete', () => {
  const recordIds = ['0a000000-0000-4000-8000-000000000001', 'fb000000-0000-4000-8000-000000000002'];

  async function userWithRecords() {
    const context = setup();
    const { userId, accessToken } = await context.accounts.create('alice');
    const user = await context.accounts.authenticate(userId, accessToken);
    for (const recordId of recordIds) {
      const row = context.db.addRecord(userId, recordId);
      await context.blobs.put(audioKey(row), readable(`audio of ${recordId}`));
    }
    // Someone else's audio, which must stay.
    const other = await context.accounts.create('bob');
    const otherRow = context.db.addRecord(other.userId, 'cc000000-0000-4000-8000-000000000003');
    await context.blobs.put(audioKey(otherRow), readable('bob'));
    context.db.journal.length = 0;
    return { ...context, user, otherRow };
  }

  it('deletes the rows first, then every blob of the user, and nothing else', async () => {
    const { db, blobs, accounts, user, otherRow } = await userWithRecords();
    const log = new RecordingLogger();
    await accounts.delete(user, log);
    expect(db.journal).toEqual([
      `rows.delete-user ${user.id}`,
      ...recordIds.map((recordId) => `blob.delete ${audioKey({ recordId, format: 'mp3' })}`),
    ]);
    expect(db.users.has(user.id)).toBe(false);
    expect(db.records.map((row) => row.recordId)).toEqual([otherRow.recordId]);
    expect([...blobs.blobs.keys()]).toEqual([audioKey(otherRow)]);
    expect(log.entries).toEqual([]);
  });

  it('a blob that cannot be deleted is a warning, not a failure, and the others are still tried', async () => {
    const { db, blobs, accounts, user } = await userWithRecords();
    blobs.deleteFailure = Object.assign(new Error('EACCES'), { code: 'EACCES' });
    const log = new RecordingLogger();
    await expect(accounts.delete(user, log)).resolves.toBeUndefined();
    expect(db.users.has(user.id)).toBe(false);
    expect(db.journal.filter((line) => line.startsWith('blob.delete'))).toHaveLength(2);
    expect(log.at('warn').map((entry) => entry.details)).toEqual(
      recordIds.map((recordId) => ({ err: blobs.deleteFailure, recordId })),
    );
    expect(log.at('error')).toEqual([]);
  });

  it('deleting a user that is already gone is Unauthorized and touches no blob', async () => {
    const { db, accounts, user } = await userWithRecords();
    await accounts.delete(user, new RecordingLogger());
    db.journal.length = 0;
    await expect(accounts.delete(user, new RecordingLogger())).rejects.toBeInstanceOf(Unauthorized);
    expect(db.journal).toEqual([]);
  });
});
