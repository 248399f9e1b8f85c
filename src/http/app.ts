import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import accepts from '@fastify/accepts';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Services } from '../container.js';
import { startStorageCheck, type BackgroundCheck } from '../services/storage-check.js';
import { registerApiV1 } from './api-v1.js';
import { registerAuthentication } from './auth.js';
import { healthRoutes } from './health.js';
import { registerErrorHandling } from './problems.js';
import { answerClientError, registerProtection } from './protection.js';
import { registerWebApp } from './web-app.js';

const REQUEST_ID = /^[\w.-]{1,64}$/;

/**
 * The HTTP face of `services`: plugins, parsers, error handling and every route. Closing the app closes
 * the services too.
 */
export async function buildApp(services: Services): Promise<FastifyInstance> {
  const { config, logger } = services;
  const app = Fastify({
    loggerInstance: logger,
    // A hop count trusts that many proxies in front of the service, nearest first.
    trustProxy:
      typeof config.trustProxy === 'number'
        ? (_address: string, hop: number) => hop < Number(config.trustProxy)
        : config.trustProxy,
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
  app.addHook('onClose', () => services.close());

  const { removedFiles } = await services.scratch.init();
  if (removedFiles > 0) app.log.warn({ removedTempFiles: removedFiles }, 'removed temp files left by an earlier run');

  services.startConverter();
  services.converterReady().then(
    (version) => app.log.info({ ffmpeg: version }, 'converter found'),
    (error: unknown) => app.log.error({ err: error }, 'ffmpeg cannot be run: uploads will fail until it can'),
  );

  // Rows vs stored audio, in the background once listening; stopped before the database closes.
  let storageCheck: BackgroundCheck | undefined;
  app.addHook('onReady', async () => {
    if (config.storageCheck.onStart)
      storageCheck = startStorageCheck(
        services.records,
        services.blobs,
        config.storageCheck.orphanMinAgeMs,
        app.log,
        (work) => services.database.runAlone('storage-check', work),
      );
  });
  app.addHook('onClose', async () => storageCheck?.stop());

  registerBodyParsers(app);
  registerErrorHandling(app);
  await registerProtection(app, config, services.hitCounters);
  await app.register(multipart, { limits: { fileSize: config.maxUploadBytes } });
  await app.register(accepts);
  await registerDocs(app);
  registerAuthentication(app, services.accounts);

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  await app.register(healthRoutes, {
    checks: {
      database: () => services.database.ping(),
      storage: () => services.blobs.ping(),
      converter: async () => {
        await services.converterReady();
      },
    },
  });
  await registerApiV1(app, services);
  await registerWebApp(app, config.webDir);
  return app;
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
