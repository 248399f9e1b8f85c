import { existsSync } from 'node:fs';
import { loadConfig } from './config.js';
import { openDatabase } from './db/client.js';

/** `npm run migrate`: applies the migrations and exits, for deployments that migrate as a separate step. */
async function migrateOnly(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const config = loadConfig();
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
  try {
    await database.migrate();
    console.log(`Migrations applied (${database.kind}).`);
  } finally {
    await database.close();
  }
}

migrateOnly().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
