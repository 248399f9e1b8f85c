import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { PGlite } from '@electric-sql/pglite';

/**
 * PostgreSQL's settings inside the embedded database, sized for this service's few small tables read by
 * primary key. PGlite starts PostgreSQL with 160 MB of shared_buffers, all of it resident from start-up
 * (measured: 120 MB more RSS than with 16 MB). 8 MB keeps the hot pages of the tables and indexes; other
 * pages come from the operating system's page cache. The other settings allocate only on use.
 */
const START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=8MB'];

/** Opens the embedded database in `directory`, creating it first (in a child process) when it is new. */
export async function openPgliteClient(directory: string): Promise<PGlite> {
  if (!(await exists(join(directory, 'PG_VERSION')))) await createInChildProcess(directory);
  // V8 compiles PGlite's 9 MB of WebAssembly twice by default: at once with its baseline compiler
  // (Liftoff), then again, hot functions first, with its optimising one (TurboFan), keeping both. For this
  // workload's short queries the optimised code gains nothing measurable and costs ~60 MB of resident
  // memory, plus compile pauses of tens of ms on the event loop while it is produced (bench row 5). The
  // flag is process-wide; the embedded database is the only WebAssembly this service runs.
  setFlagsFromString('--liftoff-only');
  return PGlite.create(directory, { startParams: START_PARAMS });
}

/** initdb takes a few seconds; a child stuck far longer is stopped, and start-up fails saying so. */
const CREATE_TIMEOUT_MS = 120_000;

/**
 * A new database is made by initdb, which PGlite runs as a second WebAssembly instance beside the first;
 * in the service's process the memory it used stays with the process (several hundred MB after a first
 * start: the allocator keeps it). A child process gives it all back when it exits. Its code is passed
 * with -e so that it needs no file of its own beside either the compiled or the TypeScript sources.
 */
async function createInChildProcess(directory: string): Promise<void> {
  const code = `
    const [pglite, directory, ...startParams] = process.argv.slice(1);
    require(pglite).PGlite.create(directory, { startParams }).then((db) => db.close()).catch((error) => {
      // Emscripten's file-system errors carry an errno and no message.
      console.error(error?.message || (error?.errno ? 'file system error, errno ' + error.errno : String(error)));
      process.exitCode = 1;
    });`;
  // Resolved here: code run with -e would resolve the package from the working directory instead.
  const pglite = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  try {
    await promisify(execFile)(process.execPath, ['-e', code, pglite, directory, ...START_PARAMS], {
      timeout: CREATE_TIMEOUT_MS,
    });
  } catch (error) {
    const { stderr, killed } = error as { stderr?: string; killed?: boolean };
    const reason = killed === true ? `it took over ${CREATE_TIMEOUT_MS / 1000} s` : stderr?.trim();
    throw new Error(`Could not create the embedded database in ${directory}${reason ? `: ${reason}` : '.'}`, {
      cause: error,
    });
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
