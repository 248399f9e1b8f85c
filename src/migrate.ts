import { loadConfigFromProcess } from './config.js';
import { createServices } from './container.js';

/** `node dist/migrate.js` (`npm run migrate`): applies the migrations and exits, for deployments that migrate as a separate step. */
async function migrateOnly(): Promise<void> {
  // Building the services applies pending migrations.
  const services = await createServices(loadConfigFromProcess());
  console.log(`Migrations applied (${services.database.kind}).`);
  await services.close();
}

migrateOnly().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
