import { mkdtemp, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenFiles, readAt, type OpenFile } from '../../src/storage/open-files.js';

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'open-files-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

async function fileWith(name: string, text: string): Promise<string> {
  const path = join(folder, name);
  await writeFile(path, text);
  return path;
}

/** Whether the descriptor still names `path` (a closed number may be reused, for something else). */
const isOpen = async (file: OpenFile, path: string) =>
  (await readlink(`/proc/self/fd/${file.fd}`).catch(() => '')) === path;

describe('OpenFiles', () => {
  it('shares one descriptor between users, and closes it once its time is up and the last user let go', async () => {
    const path = await fileWith('a', 'hello world');
    const files = new OpenFiles(200, 10);
    const first = await files.acquire('a', path);
    const second = await files.acquire('a', path);
    expect(second?.fd).toBe(first?.fd);
    expect(first).toMatchObject({ sizeBytes: 11 });
    if (first === undefined || second === undefined) throw new Error('not opened');
    expect((await readAt(first, 6, 5)).toString()).toBe('world');
    files.release(first);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await isOpen(second, path)).toBe(true); // still read by its second user
    const third = await files.acquire('a', path);
    expect(third?.fd).not.toBe(first.fd); // expired: opened anew
    files.release(second);
    await expect.poll(() => isOpen(second, path)).toBe(false);
    if (third !== undefined) files.release(third);
    files.close();
    if (third !== undefined) await expect.poll(() => isOpen(third, path)).toBe(false);
  });

  it('answers undefined for a missing file', async () => {
    expect(await new OpenFiles().acquire('missing', join(folder, 'missing'))).toBeUndefined();
  });

  it('lets a forgotten key be opened anew, and does not keep a file opened while its key was forgotten', async () => {
    const path = await fileWith('b', 'old');
    const files = new OpenFiles(60_000, 10);
    const opening = files.acquire('b', path);
    files.forget('b'); // replaced while the open was on its way
    const raced = await opening;
    const next = await files.acquire('b', path);
    expect(next?.fd).not.toBe(raced?.fd);
    if (raced === undefined || next === undefined) throw new Error('not opened');
    files.release(raced);
    await expect.poll(() => isOpen(raced, path)).toBe(false);

    files.forget('b');
    expect(await isOpen(next, path)).toBe(true); // in use: closed when let go
    files.release(next);
    await expect.poll(() => isOpen(next, path)).toBe(false);
    files.close();
  });

  it('holds at most its bound of idle descriptors', async () => {
    const files = new OpenFiles(60_000, 2);
    const opened = [];
    for (const name of ['c1', 'c2', 'c3']) {
      const path = await fileWith(name, name);
      const file = await files.acquire(name, path);
      if (file === undefined) throw new Error('not opened');
      files.release(file);
      opened.push({ file, path });
    }
    const [oldest, ...rest] = opened;
    await expect.poll(() => isOpen(oldest!.file, oldest!.path)).toBe(false);
    for (const { file, path } of rest) expect(await isOpen(file, path)).toBe(true);
    files.close();
    for (const { file, path } of rest) await expect.poll(() => isOpen(file, path)).toBe(false);
  });

  it('refuses a file shorter than the bytes asked for', async () => {
    const path = await fileWith('d', 'short');
    const files = new OpenFiles();
    const file = await files.acquire('d', path);
    if (file === undefined) throw new Error('not opened');
    await expect(readAt(file, 2, 10)).rejects.toThrow(/early/);
    files.release(file);
    files.close();
  });
});
