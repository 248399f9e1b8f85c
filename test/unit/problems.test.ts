import { Type } from 'typebox';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import {
  AudioRejected,
  Busy,
  InsufficientStorage,
  InvalidInput,
  NotFound,
  QuotaExceeded,
  RateLimited,
  Unauthorized,
  Unavailable,
  BodyTooSlow,
  UploadTooLarge,
  UsernameTaken,
} from '../../src/domain/errors.js';
import { registerErrorHandling, toProblem } from '../../src/http/problems.js';

describe('toProblem: domain errors', () => {
  it.each([
    ['InvalidInput', new InvalidInput('bad limit'), 400, 'about:blank', {}],
    ['Unauthorized', new Unauthorized(), 401, 'about:blank', { 'www-authenticate': 'Bearer' }],
    ['NotFound', new NotFound('no such record'), 404, 'about:blank', {}],
    ['BodyTooSlow', new BodyTooSlow('stopped sending'), 408, 'about:blank', { connection: 'close' }],
    ['UsernameTaken', new UsernameTaken('alice'), 409, 'about:blank', {}],
    ['UploadTooLarge', new UploadTooLarge('too big'), 413, 'about:blank', {}],
    ['QuotaExceeded', new QuotaExceeded('full'), 413, '/problems/quota-exceeded', {}],
    ['too-long', new AudioRejected('too-long', 'long'), 413, '/problems/too-long', {}],
    ['unsupported-format', new AudioRejected('unsupported-format', 'no'), 415, '/problems/not-a-wav', {}],
    ['undecodable', new AudioRejected('undecodable', 'no'), 422, '/problems/undecodable-audio', {}],
    ['RateLimited', new RateLimited('slow down', 17), 429, 'about:blank', { 'retry-after': '17' }],
    ['Busy', new Busy('busy', 3), 503, 'about:blank', { 'retry-after': '3' }],
    ['Unavailable', new Unavailable('down', 30), 503, 'about:blank', { 'retry-after': '30' }],
    ['InsufficientStorage', new InsufficientStorage('disk full'), 507, '/problems/insufficient-storage', {}],
  ] as const)('%s → %i %s', (_name, error, status, type, headers) => {
    expect(toProblem(error)).toEqual({ status, type, headers, detail: error.detail });
  });

  it('keeps the detail of a domain error, which is written for the client', () => {
    expect(toProblem(new UsernameTaken('alice')).detail).toBe('The username "alice" is already taken.');
    expect(toProblem(new Unauthorized()).detail).toBe('Missing or invalid access token for this user.');
  });
});

describe('toProblem: other errors', () => {
  it('an unknown error is a 500 whose detail does not repeat the message', () => {
    const problem = toProblem(new Error('password=hunter2 at /srv/secret/path'));
    expect(problem.status).toBe(500);
    expect(problem.type).toBe('about:blank');
    expect(problem.detail).not.toMatch(/hunter2|secret/);
    expect(problem.detail).toBe('The server failed to handle this request. It has been logged.');
    expect(toProblem('a thrown string').status).toBe(500);
    expect(toProblem(undefined).status).toBe(500);
  });

  it('an error with a code but no client status is a 500 too', () => {
    const systemError = Object.assign(new Error("ENOENT: no such file '/srv/data/x'"), { code: 'ENOENT' });
    const problem = toProblem(systemError);
    expect(problem.status).toBe(500);
    expect(problem.detail).not.toContain('/srv/data');
    const serverSide = Object.assign(new Error('internal'), { code: 'FST_X', statusCode: 500 });
    expect(toProblem(serverSide).detail).not.toBe('internal');
  });

  it('a Fastify validation error is a 400 with its message', () => {
    const error = Object.assign(new Error('querystring/limit must be <= 100'), {
      code: 'FST_ERR_VALIDATION',
      statusCode: 400,
      validation: [{ message: 'must be <= 100' }],
    });
    expect(toProblem(error)).toEqual({
      status: 400,
      type: 'about:blank',
      detail: 'querystring/limit must be <= 100',
      headers: {},
    });
  });

  it("the framework's own 4xx errors keep their status", () => {
    const error = Object.assign(new Error('Request body is too large'), {
      code: 'FST_ERR_CTP_BODY_TOO_LARGE',
      statusCode: 413,
    });
    expect(toProblem(error)).toMatchObject({ status: 413, detail: 'Request body is too large' });
  });

  it('an unreachable database is a 503 with Retry-After, also behind a wrapper', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:5432'), { code: 'ECONNREFUSED' });
    expect(toProblem(refused)).toEqual({
      status: 503,
      type: 'about:blank',
      detail: 'The database is not reachable right now.',
      headers: { 'retry-after': '5' },
    });
    const wrapped = new Error('Failed query: select …', { cause: refused });
    expect(toProblem(wrapped).status).toBe(503);
    const adminShutdown = Object.assign(new Error('terminating connection'), { code: '57P01' });
    expect(toProblem(adminShutdown).status).toBe(503);
    const uniqueViolation = Object.assign(new Error('duplicate key'), { code: '23505' });
    expect(toProblem(uniqueViolation).status).toBe(500);
  });
});

describe('registerErrorHandling on a Fastify app', () => {
  async function appWithRoutes() {
    const app = Fastify({ logger: false });
    registerErrorHandling(app);
    app.get(
      '/validated',
      { schema: { querystring: Type.Object({ limit: Type.Integer({ maximum: 100 }) }) } },
      async () => ({ ok: true }),
    );
    app.get('/crash', async () => {
      throw new Error('secret connection string postgres://u:p@db');
    });
    app.get('/unauthorized', async () => {
      throw new Unauthorized();
    });
    await app.ready();
    return app;
  }

  it('answers a schema violation with 400 problem+json', async () => {
    const app = await appWithRoutes();
    const response = await app.inject({ method: 'GET', url: '/validated?limit=1000' });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    const body = response.json<{ type: string; title: string; status: number; detail: string }>();
    expect(body).toMatchObject({ type: 'about:blank', title: 'Bad Request', status: 400 });
    expect(body.detail).toMatch(/limit/);
    await app.close();
  });

  it('answers an unexpected error with a generic 500', async () => {
    const app = await appWithRoutes();
    const response = await app.inject({ method: 'GET', url: '/crash' });
    expect(response.statusCode).toBe(500);
    expect(response.payload).not.toMatch(/secret|postgres/);
    expect(response.json()).toEqual({
      type: 'about:blank',
      title: 'Internal Server Error',
      status: 500,
      detail: 'The server failed to handle this request. It has been logged.',
    });
    await app.close();
  });

  it('sends the headers of the table', async () => {
    const app = await appWithRoutes();
    const response = await app.inject({ method: 'GET', url: '/unauthorized' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Bearer');
    await app.close();
  });

  it('answers an unknown route with a 404 problem that names the path without its query', async () => {
    const app = await appWithRoutes();
    const response = await app.inject({ method: 'GET', url: '/nowhere?access_token=s3cret' });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toMatchObject({ status: 404, detail: 'No route for GET /nowhere.' });
    expect(response.payload).not.toContain('s3cret');
    await app.close();
  });
});
