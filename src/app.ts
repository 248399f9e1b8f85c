import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import accepts from '@fastify/accepts';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { ConversionLimiter } from './audio/limiter.js';
import { checkFfmpeg } from './audio/ffmpeg-check.js';
import { AudioPipeline } from './audio/pipeline.js';
import { Transcoder } from './audio/transcoder.js';
import type { Config } from './config.js';
import { openDatabase } from './db/client.js';
import { RecordRepository } from './db/records.js';
import { UserRepository } from './db/users.js';
import { registerErrorHandling } from './api/errors.js';
import { healthRoutes } from './api/health.js';
import { registerApiV1 } from './api/v1/index.js';
import { answerClientError, registerProtection } from './api/protection.js';
import type { Services } from './api/v1/services.js';
import { LocalStorage } from './storage/local.js';
import { startStorageCheck, type BackgroundCheck } from './storage/check.js';

export interface AppOptions {
  /** Where logs go (tests capture them); stdout by default. */
  readonly logStream?: NodeJS.WritableStream;
}

// Names of query parameters whose values never reach the logs.
const SECRET_PARAMETERS = ['access_token'];
const REQUEST_ID = /^[\w.-]{1,64}$/;

/**
 * Builds the whole service from `config`: opens and migrates the database, prepares storage and
 * registers every route. Nothing is read from the environment here, so tests can run many side by side.
 */
export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config, options),
    trustProxy: config.trustProxy,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    requestIdHeader: false,
    genReqId: (request: IncomingMessage) => {
      const header = request.headers['x-request-id'];
      return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
    },
    // Uploads may legitimately take long; slow senders are cut by the upload idle timeout instead.
    requestTimeout: 0,
    bodyLimit: 64 * 1024,
    maxRequestsPerSocket: 0,
    // Requests arriving while the server drains get a problem+json 503 from registerProtection instead.
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: Math.max(10, config.convertConcurrency * 2),
  });
  app.addHook('onClose', () => database.close());
  await database.migrate();

  const storage = new LocalStorage(config.dataDir);
  const { removedTempFiles } = await storage.init();
  if (removedTempFiles > 0) app.log.warn({ removedTempFiles }, 'removed temp files left by an earlier run');

  const converterCheck = checkFfmpeg(config.ffmpegPath);
  converterCheck.then(
    (version) => app.log.info({ ffmpeg: version }, 'converter found'),
    (error: unknown) => app.log.error({ err: error }, 'ffmpeg cannot be run: uploads will fail until it can'),
  );

  const services: Services = {
    config,
    users: new UserRepository(database.db),
    records: new RecordRepository(database.db),
    storage,
    pipeline: new AudioPipeline(
      new Transcoder({ ffmpegPath: config.ffmpegPath, encoding: config.encoding, timeoutMs: config.convertTimeoutMs }),
      storage,
      { maxDurationSeconds: config.maxDurationSeconds },
    ),
    limiter: new ConversionLimiter(config.convertConcurrency, config.convertQueueSize),
  };

  // Rows vs files, in the background once listening; stopped before the database closes.
  let storageCheck: BackgroundCheck | undefined;
  app.addHook('onReady', async () => {
    if (config.storageCheck.onStart)
      storageCheck = startStorageCheck(services.records, storage, config.storageCheck.orphanMinAgeMs, app.log);
  });
  app.addHook('onClose', async () => storageCheck?.stop());

  registerBodyParsers(app);
  registerErrorHandling(app);
  await registerProtection(app, config);
  await app.register(multipart, { limits: { fileSize: config.maxUploadBytes } });
  await app.register(accepts);
  await registerDocs(app);

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  await app.register(healthRoutes, {
    checks: {
      database: () => database.ping(),
      converter: async () => {
        await converterCheck;
      },
    },
  });
  await registerApiV1(app, services);
  return app;
}

function loggerOptions(config: Config, options: AppOptions): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    ...(options.logStream === undefined ? {} : { stream: options.logStream }),
    // `*.headers…` also covers @fastify/multipart's trace line, which logs the request headers it hands to busboy.
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', '*.headers.authorization'],
      censor: '[redacted]',
    },
    serializers: {
      req: (request: { method: string; url: string; hostname?: string; ip?: string }) => ({
        method: request.method,
        url: redactUrl(request.url),
        host: request.hostname,
        remoteAddress: request.ip,
      }),
    },
  };
}

/** The URL with secret query parameters blanked out; everything else stays as the client wrote it. */
export function redactUrl(url: string): string {
  const queryStart = url.indexOf('?');
  if (queryStart === -1) return url;
  const pairs = url
    .slice(queryStart + 1)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      const rawName = equals === -1 ? pair : pair.slice(0, equals);
      return SECRET_PARAMETERS.includes(decodeName(rawName)) ? `${rawName}=[redacted]` : pair;
    });
  return `${url.slice(0, queryStart)}?${pairs.join('&')}`;
}

/** A query parameter name as the query parser sees it (`access%5Ftoken` is `access_token`). */
function decodeName(rawName: string): string {
  try {
    return decodeURIComponent(rawName.replace(/\+/g, ' '));
  } catch {
    return rawName;
  }
}

function registerBodyParsers(app: FastifyInstance): void {
  // The seed's own examples POST with `Content-Type: application/json` and no body, or with curl's
  // `-d ''` (form-encoded, empty). Both must work; parameters travel in the query string.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text === '') {
      done(null, undefined);
      return;
    }
    void parseJson(request, text, done);
  });
  // Any other body is left unread: routes take their input from the query or from multipart streams,
  // and the upload route answers 400 for a body that is not multipart.
  app.addContentTypeParser('*', (_request, _payload, done) => {
    done(null, undefined);
  });
}

async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Audio records',
        description:
          'Turns WAV recordings into stored MP3s. Every route is served under `/api/v1` and, as in the original ' +
          'description, under `/api_v1`. Errors are RFC 9457 problem details.',
        version: '1.0.0',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'The access token returned when the user was created.',
          },
          accessToken: { type: 'apiKey', in: 'query', name: 'access_token' },
        },
      },
    },
    // Multipart bodies are streamed, not validated, so their shape is given to the document only.
    transform: ({ schema, url }) => {
      const consumes = schema?.consumes;
      if (schema === undefined || !Array.isArray(consumes) || !consumes.includes('multipart/form-data')) {
        return { schema, url };
      }
      return {
        schema: {
          ...schema,
          body: {
            type: 'object',
            required: ['file'],
            properties: {
              file: { type: 'string', format: 'binary', description: 'The WAV recording.' },
              title: { type: 'string', description: 'An optional title.' },
            },
          },
        },
        url,
      };
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
}
