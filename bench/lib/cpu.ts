import { readdir, readFile, readlink } from 'node:fs/promises';
import { median } from '../../test/kit/stats.js';

// Read from /proc by hand: Linux's own accounting is what the figures are defined by, and no
// library reads the reaped-children fields (cutime, cstime) that give the encoders' share.

/** USER_HZ: the unit of /proc's CPU times; 100 on every Linux platform Node runs on. */
const TICKS_PER_SECOND = 100;

/** Busy and total CPU-seconds over all cores since boot, from the first line of /proc/stat. */
interface CoreTimes {
  readonly busySeconds: number;
  readonly totalSeconds: number;
}

async function coreTimes(): Promise<CoreTimes> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal …; guest time is already in user. Steal (the
  // hypervisor running other guests) is left out of both: those cores were not this machine's to use.
  const [user, nice, system, idle, iowait, irq, softirq] = line.trim().split(/\s+/).slice(1, 8).map(Number);
  const busy = user! + nice! + system! + irq! + softirq!;
  return { busySeconds: busy / TICKS_PER_SECOND, totalSeconds: (busy + idle! + iowait!) / TICKS_PER_SECOND };
}

/** One process's CPU-seconds: its own, and those of its children it has reaped (waited for). */
export interface ProcessTimes {
  readonly ownSeconds: number;
  readonly reapedChildrenSeconds: number;
}

/** The times in a /proc/PID/stat line. */
export function statTimes(stat: string): ProcessTimes {
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14–17 of stat(5): utime stime cutime cstime; `fields` starts at field 3.
  const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
  return {
    ownSeconds: (utime! + stime!) / TICKS_PER_SECOND,
    reapedChildrenSeconds: (cutime! + cstime!) / TICKS_PER_SECOND,
  };
}

/** undefined when the process is gone. */
async function processTimes(pid: number): Promise<ProcessTimes | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat === undefined ? undefined : statTimes(stat);
}

/**
 * The server's launcher (src/media/launcher.ts), the Node process that starts its encoders: a child of the
 * server named node (it starts with the server's HTTP app). undefined while there is none.
 */
export async function launcherOf(serverPid: number): Promise<number | undefined> {
  const children = await readFile(`/proc/${serverPid}/task/${serverPid}/children`, 'utf8').catch(() => '');
  for (const child of children.split(' ').filter((entry) => entry !== '')) {
    if ((await readFile(`/proc/${child}/comm`, 'utf8').catch(() => '')).trim() === 'node') return Number(child);
  }
  return undefined;
}

/**
 * The service's times: the server's own and its launcher's count as the server's; the encoders are the
 * launcher's reaped children (and any the server reaped itself).
 */
async function serviceTimes(serverPid: number): Promise<ProcessTimes | undefined> {
  const server = await processTimes(serverPid);
  const launcherPid = await launcherOf(serverPid);
  const launcher = launcherPid === undefined ? undefined : await processTimes(launcherPid);
  if (server === undefined || launcher === undefined) return server;
  return {
    ownSeconds: server.ownSeconds + launcher.ownSeconds,
    reapedChildrenSeconds: server.reapedChildrenSeconds + launcher.reapedChildrenSeconds,
  };
}

/** The local ports of `pid`'s TCP connections to `remotePort` (its database pool, for PostgreSQL's 5432). */
async function connectionPorts(pid: number, remotePort: number): Promise<Set<number>> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode !== undefined) inodes.add(inode);
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    const lines = (await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '')).split('\n').slice(1);
    for (const line of lines) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const columns = line.trim().split(/\s+/);
      const [local, remote, inode] = [columns[1], columns[2], columns[9]];
      if (local === undefined || remote === undefined || inode === undefined || !inodes.has(inode)) continue;
      if (Number.parseInt(remote.split(':')[1] ?? '', 16) !== remotePort) continue;
      ports.add(Number.parseInt(local.split(':')[1] ?? '', 16));
    }
  }
  return ports;
}

/**
 * CPU-seconds of the PostgreSQL backends that serve `pid`'s connections to `port`, by backend pid. A
 * backend's title names its client's address and port; backends of other clients (other test runs on a
 * shared server) and the server's own auxiliary processes are left out.
 */
async function databaseBackendTimes(pid: number, port: number): Promise<Map<number, number>> {
  const times = new Map<number, number>();
  const ports = await connectionPorts(pid, port);
  if (ports.size === 0) return times;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const backend = Number(entry);
    if ((await readFile(`/proc/${backend}/comm`, 'utf8').catch(() => '')).trim() !== 'postgres') continue;
    const title = await readFile(`/proc/${backend}/cmdline`, 'utf8').catch(() => '');
    const clientPort = /\((\d+)\)/.exec(title)?.[1];
    if (clientPort === undefined || !ports.has(Number(clientPort))) continue;
    const own = await processTimes(backend);
    if (own !== undefined) times.set(backend, own.ownSeconds);
  }
  return times;
}

/** What the machine's cores, the service, its encoders, the database and the client did during a run. */
export interface CpuSplit {
  readonly wallSeconds: number;
  /** Busy CPU-seconds over wall × cores, from /proc/stat: everything on the machine, other load included. */
  readonly coresBusy: number;
  /** The server process and its launcher, which starts the encoders. */
  readonly serverSeconds: number;
  /** Reaped children of the service and of this process: every ffmpeg run to its end during the run. */
  readonly encoderSeconds: number;
  /** The PostgreSQL backends of the service's connections; 0 with PGlite, whose work is in `serverSeconds`. */
  readonly databaseSeconds: number;
  /** This process (the benchmark client), without its children. */
  readonly clientSeconds: number;
}

interface Reading {
  readonly at: number;
  readonly cores: CoreTimes;
  readonly server: ProcessTimes | undefined;
  readonly client: ProcessTimes | undefined;
  readonly database: Map<number, number>;
}

async function reading(serverPid: number | undefined, databaseUrl: string | undefined): Promise<Reading> {
  const [cores, server, client, database] = await Promise.all([
    coreTimes(),
    serverPid === undefined ? undefined : serviceTimes(serverPid),
    processTimes(process.pid),
    serverPid === undefined || databaseUrl === undefined
      ? new Map<number, number>()
      : databaseBackendTimes(serverPid, Number(new URL(databaseUrl).port || 5432)),
  ]);
  return { at: performance.now(), cores, server, client, database };
}

const change = (start: number | undefined, end: number | undefined) => (end ?? 0) - (start ?? 0);

/**
 * Starts measuring; `stop` returns the split since then. `serverPid` is undefined for a bare-ffmpeg
 * baseline, whose encoders are this process's children; `databaseUrl` (the service's) is undefined on
 * PGlite.
 */
export async function startCpuSplit(serverPid: number | undefined, databaseUrl: string | undefined) {
  const start = await reading(serverPid, databaseUrl);
  return {
    stop: async (): Promise<CpuSplit> => {
      const end = await reading(serverPid, databaseUrl);
      let databaseSeconds = 0;
      // A backend that started during the run counts in full; one that ended is lost (it is not our child).
      for (const [pid, seconds] of end.database) databaseSeconds += seconds - (start.database.get(pid) ?? 0);
      return {
        wallSeconds: (end.at - start.at) / 1000,
        // /proc/stat's total over the run is wall × cores, as the kernel counts them.
        coresBusy:
          (end.cores.busySeconds - start.cores.busySeconds) / (end.cores.totalSeconds - start.cores.totalSeconds),
        serverSeconds: change(start.server?.ownSeconds, end.server?.ownSeconds),
        encoderSeconds:
          change(start.server?.reapedChildrenSeconds, end.server?.reapedChildrenSeconds) +
          change(start.client?.reapedChildrenSeconds, end.client?.reapedChildrenSeconds),
        databaseSeconds,
        clientSeconds: change(start.client?.ownSeconds, end.client?.ownSeconds),
      };
    },
  };
}

/** Row 28's goals (issue 13): the cores kept busy, and the server's own work small beside the encoders'. */
const CORES_BUSY_GOAL = 0.95;
const SERVER_SHARE_GOAL = 0.03;

const percent = (fraction: number) => `${(fraction * 100).toFixed(1)} %`;
const cpuSeconds = (seconds: number) => `${seconds.toFixed(2)} CPU-s`;

/**
 * The cells of row 28 from the runs of row 4: medians over the runs, each run listed in `detail`. `relay`
 * holds the runs in which socat fed the same ffmpeg commands, its CPU in `serverSeconds`: the least any
 * process that moves the uploads' bytes can cost on this machine.
 */
export function cpuSplitCells(service: readonly CpuSplit[], bare: readonly CpuSplit[], relay: readonly CpuSplit[]) {
  const pick = (splits: readonly CpuSplit[], field: (split: CpuSplit) => number) => median(splits.map(field));
  const busy = pick(service, (split) => split.coresBusy);
  const bareBusy = pick(bare, (split) => split.coresBusy);
  const share = (split: CpuSplit) => split.serverSeconds / Math.max(split.encoderSeconds, 0.01);
  const serverShare = pick(service, share);
  const relayShare = pick(relay, share);
  const encoders = pick(service, (split) => split.encoderSeconds);
  const run = (split: CpuSplit) =>
    `busy ${percent(split.coresBusy)} of ${split.wallSeconds.toFixed(2)} s, server ${split.serverSeconds.toFixed(2)}, ` +
    `encoders ${split.encoderSeconds.toFixed(2)}, database ${split.databaseSeconds.toFixed(2)}, ` +
    `client ${split.clientSeconds.toFixed(2)}`;
  return {
    service:
      `cores busy ${percent(busy)}; server ${cpuSeconds(pick(service, (split) => split.serverSeconds))}, ` +
      `encoders ${cpuSeconds(encoders)}, database ${cpuSeconds(pick(service, (split) => split.databaseSeconds))}, ` +
      `client ${cpuSeconds(pick(service, (split) => split.clientSeconds))}`,
    baseline:
      `bare ffmpeg: cores busy ${percent(bareBusy)}, encoders ${cpuSeconds(pick(bare, (split) => split.encoderSeconds))}; ` +
      `socat relaying the same samples into ffmpeg: ${cpuSeconds(pick(relay, (split) => split.serverSeconds))}, ` +
      `${percent(relayShare)} of its encoders' CPU`,
    result:
      `busy ${percent(busy)}; server ${percent(serverShare)} of encoder CPU ` +
      `(×${(serverShare / Math.max(relayShare, 0.001)).toFixed(1)} of socat's share)`,
    target: `busy ≥ ${percent(CORES_BUSY_GOAL)}; server ≤ ${percent(SERVER_SHARE_GOAL)}`,
    met: busy >= CORES_BUSY_GOAL && serverShare <= SERVER_SHARE_GOAL,
    detail:
      `service runs: ${service.map(run).join('; ')}. Bare runs: ${bare.map(run).join('; ')}. ` +
      `Relayed runs (server = socat): ${relay.map(run).join('; ')}.`,
  };
}
