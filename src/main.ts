import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfigFromProcess } from './config.js';
import { createServices } from './container.js';
import { buildApp } from './http/app.js';

async function main(): Promise<void> {
  const config = loadConfigFromProcess();
  const app = await buildApp(await createServices(config));

  // SIGTERM/SIGINT: stop accepting, let in-flight uploads finish within the grace time, then close the database.
  closeWithGrace({ delay: config.shutdownGraceMs }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an unexpected error');
    else app.log.info({ signal }, 'shutting down');
    await app.close();
  });

  await app.listen({ port: config.port, host: config.host });
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
