import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url);

describe('the start command', () => {
  it('runs Node with the same flags in the image as `npm start` (the bench measures the latter)', async () => {
    const scripts = (
      JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as { scripts: { start: string } }
    ).scripts;
    const dockerfile = await readFile(new URL('Dockerfile', root), 'utf8');
    const commands = [...dockerfile.matchAll(/^CMD (\[.*\])$/gm)].map((match) => JSON.parse(match[1]!) as string[]);
    expect(commands).toHaveLength(1);
    expect(commands[0]).toEqual(scripts.start.split(' '));
  });
});
