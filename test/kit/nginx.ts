import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, untilAnswering } from './http.js';

/**
 * nginx in front of services the test started, configured from the deployment's own files
 * (deploy/nginx/templates/default.conf.template and deploy/nginx/audio-limits.envsh), so that what the
 * tests check is what docker-compose.scale.yml runs: only the upstream's servers, the listening address
 * and the log's path are the test's.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TEMPLATE = join(ROOT, 'deploy', 'nginx', 'templates', 'default.conf.template');
const LIMITS = join(ROOT, 'deploy', 'nginx', 'audio-limits.envsh');
// The lines the test replaces: Docker's DNS and the Compose service's name.
const SERVERS = /^[ \t]*# begin servers\n[\s\S]*?^[ \t]*# end servers\n/m;

export interface RunningNginx {
  /** e.g. http://127.0.0.1:41234 */
  readonly url: string;
  /** The configuration nginx runs with, as generated. */
  readonly config: string;
  /** The access log so far (format `audio` of the template). */
  accessLog(): Promise<string>;
  stop(): Promise<void>;
}

/** The nginx binary, looked up on PATH and in /usr/sbin (not on a non-root user's PATH); undefined if none. */
export function findNginx(): string | undefined {
  const directories = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  return directories.map((directory) => join(directory, 'nginx')).find((path) => existsSync(path));
}

/**
 * The template with `servers` in place of its upstream servers and its ${NGINX_*} values computed by
 * audio-limits.envsh from `env` (the services' MAX_UPLOAD_BYTES, CONVERT_TIMEOUT_SECONDS…), as the nginx
 * image's entrypoint computes them.
 */
async function proxyConfig(options: {
  readonly servers: readonly string[];
  readonly listen: string;
  readonly accessLog: string;
  readonly env: Readonly<Record<string, string>>;
}): Promise<string> {
  const computed = spawnSync('sh', ['-c', `. '${LIMITS}' && env`], {
    env: { PATH: process.env.PATH, ...options.env, NGINX_LISTEN: options.listen, NGINX_ACCESS_LOG: options.accessLog },
    encoding: 'utf8',
  });
  if (computed.status !== 0) throw new Error(`audio-limits.envsh failed: ${computed.stderr}`);
  const values = new Map(
    computed.stdout
      .split('\n')
      .filter((line) => line.startsWith('NGINX_'))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
  const template = await readFile(TEMPLATE, 'utf8');
  if (!SERVERS.test(template)) throw new Error(`no "# begin servers" … "# end servers" lines in ${TEMPLATE}`);
  const servers = options.servers.map((server) => `    server ${server};\n`).join('');
  return template.replace(SERVERS, servers).replace(/\$\{(NGINX_[A-Z_]+)\}/g, (_whole, name: string) => {
    const value = values.get(name);
    if (value === undefined) throw new Error(`audio-limits.envsh does not set ${name}`);
    return value;
  });
}

/**
 * Starts nginx from the deployment's configuration on a free loopback port, balancing over `servers`
 * (host:port), in a folder of its own (pid, logs, temp files); resolves once a request through it reaches
 * one of them.
 */
export async function startNginx(options: {
  readonly binary: string;
  readonly servers: readonly string[];
  /** The services' settings that the proxy's limits follow. */
  readonly env: Readonly<Record<string, string>>;
}): Promise<RunningNginx> {
  const directory = await mkdtemp(join(tmpdir(), 'nginx-'));
  // Run as root, nginx's workers run as nobody: they must reach the temp folders inside.
  await chmod(directory, 0o755);
  const port = await freePort();
  const accessLog = join(directory, 'access.log');
  const errorLog = join(directory, 'error.log');
  const config = await proxyConfig({
    servers: options.servers,
    listen: `127.0.0.1:${port}`,
    accessLog,
    env: options.env,
  });
  await writeFile(join(directory, 'audio.conf'), config);
  await writeFile(
    join(directory, 'nginx.conf'),
    [
      'worker_processes 1;',
      `pid ${join(directory, 'nginx.pid')};`,
      `error_log ${errorLog} notice;`,
      'events { worker_connections 1024; }',
      'http {',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
        (kind) => `  ${kind}_temp_path ${join(directory, `${kind}_temp`)};`,
      ),
      `  include ${join(directory, 'audio.conf')};`,
      '}',
      '',
    ].join('\n'),
  );
  const child = spawn(
    options.binary,
    ['-p', directory, '-c', join(directory, 'nginx.conf'), '-e', errorLog, '-g', 'daemon off;'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const started = await untilAnswering(`${url}/health`, 30_000, () => child.exitCode !== null);
  if (started !== 'ok') {
    child.kill('SIGKILL');
    const log = await readFile(errorLog, 'utf8').catch(() => '');
    throw new Error(`nginx did not start (${started}):\n${output}\n${log}`);
  }
  return {
    url,
    config,
    accessLog: () => readFile(accessLog, 'utf8'),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGTERM: a fast shutdown, connections closed at once.
        child.kill('SIGTERM');
        await exited;
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}
