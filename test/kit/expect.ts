import type { IncomingHttpHeaders } from 'node:http';
import { expect } from 'vitest';
import { tempFiles } from './disk.js';

export interface ProblemJson {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
}

/** An answer from fetch, or from the kit's own clients (whose `text` is the body). */
export type AnyAnswer =
  | Response
  | { readonly status: number; readonly headers: IncomingHttpHeaders | Record<string, string>; readonly text: string };

/**
 * Checks the parts every error shares: the status, problem+json, exactly the four members (status
 * matching), and nothing that leaks how the server is built. Answers the problem.
 */
export async function expectProblem(answer: AnyAnswer, status: number): Promise<ProblemJson> {
  const isFetch = answer instanceof Response;
  const text = isFetch ? await answer.text() : answer.text;
  const contentType = isFetch ? answer.headers.get('content-type') : answer.headers['content-type'];
  expect({ status: answer.status, body: text }).toMatchObject({ status });
  expect(contentType).toMatch(/^application\/problem\+json(;|$)/);
  const body = JSON.parse(text) as ProblemJson;
  expect(Object.keys(body).sort()).toEqual(['detail', 'status', 'title', 'type']);
  expect(body.status).toBe(status);
  expect(body.type).toEqual(expect.any(String));
  expect(body.title).toEqual(expect.any(String));
  expect(body.detail).toEqual(expect.any(String));
  expect(body.detail.length).toBeGreaterThan(0);
  // No stack frames, source paths or driver internals.
  expect(text).not.toMatch(/\bat .+:\d+:\d+|node_modules|\/src\/|\.ts\b|stack/i);
  return body;
}

/** Waits (a little: cleanup may finish just after the answer) until DATA_DIR/tmp is empty. */
export async function expectNoTempFiles(dataDir: string): Promise<void> {
  await expect.poll(() => tempFiles(dataDir), { timeout: 10_000 }).toEqual([]);
}
