import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

/** One program to start, with pipes on the descriptors that ask for them and /dev/null on the others. */
export interface LaunchRequest {
  readonly command: string;
  readonly args: readonly string[];
  /** The program's whole environment. */
  readonly env: Readonly<Record<string, string>>;
  /** A pipe into stdin. */
  readonly stdin: boolean;
  /** A pipe out of descriptor 3 (ffmpeg's peaks output); stderr always gets one. */
  readonly fd3: boolean;
  /** Applied before the program starts, where the system permits it. */
  readonly niceness: number;
}

interface ProcessEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A started program, as far as its caller needs one. */
export interface LaunchedProcess {
  readonly pid: number;
  readonly stdin: Writable | undefined;
  readonly stderr: Readable;
  readonly fd3: Readable | undefined;
  /**
   * Settles once the program has exited and its stderr has ended, like a ChildProcess's 'close'. Rejects
   * with LauncherLost when the launcher died first: the program's fate is then unknown.
   */
  readonly closed: Promise<ProcessEnd>;
  /** SIGKILL; nothing once the program has ended. */
  kill(): void;
}

/** The launcher process could not be used; nothing about the program itself is known. */
export class LauncherLost extends Error {
  override name = 'LauncherLost';
}

/** The launcher could not start the program (no processes left, say). */
class LaunchFailed extends Error {
  override name = 'LaunchFailed';

  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/**
 * The launcher process's code, run with `node -e` so that it needs no file of its own beside either the
 * compiled or the TypeScript sources (as src/db/pglite.ts does). Written by hand: it is Node's own spawn
 * plus a small protocol, and no library starts processes from a second process.
 *
 * Each program starts under `sh`, held at `read` until the server has received every pipe and says go. The
 * pipes pass to the server over the IPC channel, and the launcher must have let go of them before anything
 * is written: a byte the launcher's end read first would be lost. `exec` then replaces sh with the program
 * (same pid, same niceness), closing the go pipe; if the launcher goes away first, read fails and the
 * program never starts.
 */
const LAUNCHER_SOURCE = `
'use strict';
const { spawn } = require('node:child_process');
const { setPriority } = require('node:os');
const GO_FD = 4;
// A missing program is told apart by a message of our own: each sh words its own differently.
const HELD_UNTIL_GO =
  'read -r go <&' + GO_FD + ' || exit 1; ' +
  'case $1 in */*) [ -f "$1" ] && [ -x "$1" ];; *) command -v -- "$1" >/dev/null 2>&1;; esac ' +
  '|| { echo "launcher: cannot execute $1" >&2; exit 127; }; ' +
  'exec "$@" ' + GO_FD + '<&-';
const running = new Map();
const stopAll = () => {
  for (const { child } of running.values()) child.kill('SIGKILL');
};
// Ctrl-C reaches the whole process group; the server decides when this process goes (by disconnecting).
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('disconnect', () => {
  stopAll();
  process.exit(0);
});
// A bug here must not leave encoders running with no one to stop them.
process.on('uncaughtException', (error) => {
  stopAll();
  console.error('launcher:', error);
  process.exit(1);
});
process.on('message', (message) => {
  const entry = running.get(message.id);
  if (message.op === 'go') return void entry?.go.end('\\n');
  if (message.op === 'kill') return void entry?.child.kill('SIGKILL');
  const { id, command, args, env, stdin, fd3, niceness } = message;
  let child;
  try {
    child = spawn('/bin/sh', ['-c', HELD_UNTIL_GO, 'sh', command, ...args], {
      stdio: [stdin ? 'pipe' : 'ignore', 'ignore', 'pipe', fd3 ? 'pipe' : 'ignore', 'pipe'],
      env,
    });
  } catch (error) {
    // Most failures to start come as 'error'; some (ENOMEM from fork) are thrown.
    return void process.send({ op: 'failed', id, message: error.message, code: error.code });
  }
  // Not started (no processes left, say): 'error' tells why. Once started, only a refused kill can emit
  // one, and the exit that follows says the rest.
  const started = child.pid !== undefined;
  child.on('error', (error) => {
    if (!started) process.send({ op: 'failed', id, message: error.message, code: error.code });
  });
  if (!started) return;
  try {
    setPriority(child.pid, niceness);
  } catch {
    // Not permitted in some containers; the program still runs, at normal priority.
  }
  const go = child.stdio[GO_FD];
  go.on('error', () => {});
  running.set(id, { child, go });
  child.once('exit', (code, signal) => {
    running.delete(id);
    process.send({ op: 'exit', id, code, signal });
  });
  process.send({ op: 'spawned', id, pid: child.pid });
  for (const fd of [0, 2, 3]) if (child.stdio[fd]) process.send({ op: 'pipe', id, fd }, child.stdio[fd]);
});
`;

type LauncherMessage =
  | { readonly op: 'spawned'; readonly id: number; readonly pid: number }
  | { readonly op: 'pipe'; readonly id: number; readonly fd: number }
  | { readonly op: 'exit'; readonly id: number; readonly code: number | null; readonly signal: NodeJS.Signals | null }
  | { readonly op: 'failed'; readonly id: number; readonly message: string; readonly code?: string };

/**
 * Starts programs (the encoders) from a small second Node process instead of from the server. libuv starts
 * a child with a plain fork, which marks every page of the forking process copy-on-write; the server then
 * takes a page fault on each page it writes afterwards, about 30,000 per eight uploads on a 100+ MiB
 * server, and on a virtual machine each fault is costly (half of the server's CPU during uploads; bench
 * row 28). The launcher is small and idle, so its forks cost little. The server starts it with the HTTP
 * app (`start`), or the first launch does; a launcher that dies is replaced on the next launch.
 */
export class ProcessLauncher {
  private launcher: LauncherProcess | undefined;

  /** `signal` stops a start that has not completed: the program is killed and the promise rejects. */
  launch(request: LaunchRequest, signal?: AbortSignal): Promise<LaunchedProcess> {
    return this.running().launch(request, signal);
  }

  /** Starts the launcher ahead of the first program, so that the first upload does not wait for Node to boot. */
  start(): void {
    this.running();
  }

  private running(): LauncherProcess {
    if (this.launcher === undefined || this.launcher.lost) {
      const launcher = new LauncherProcess(() => {
        if (this.launcher === launcher) this.launcher = undefined;
      });
      this.launcher = launcher;
    }
    return this.launcher;
  }

  /** The launcher stops what it started and exits. */
  close(): void {
    this.launcher?.close();
    this.launcher = undefined;
  }
}

class LauncherProcess {
  private readonly process: ChildProcess;
  private readonly programs = new Map<number, RemoteProgram>();
  private nextId = 0;
  lost = false;

  constructor(onLost: () => void) {
    this.process = spawn(process.execPath, ['-e', LAUNCHER_SOURCE], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      // Nothing of the server's environment (database URL, secrets) reaches the launcher either.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    this.process.unref();
    this.process.channel?.unref();
    this.process.on('message', (message: LauncherMessage, pipe?: Socket) => this.received(message, pipe));
    const lose = (reason: string) => {
      if (this.lost) return;
      this.lost = true;
      onLost();
      for (const program of this.programs.values()) program.lost(new LauncherLost(reason));
      this.programs.clear();
    };
    this.process.on('error', (error) => lose(`the launcher process failed: ${error.message}`));
    this.process.once('exit', (code, signal) => lose(`the launcher process exited (${signal ?? code})`));
  }

  launch(request: LaunchRequest, signal: AbortSignal | undefined): Promise<LaunchedProcess> {
    // Asked to stop already: nothing is started (a held sh would wait for a go that never comes).
    if (signal?.aborted === true) return Promise.reject(stoppedBeforeStart());
    const id = this.nextId++;
    const pipes = 1 + (request.stdin ? 1 : 0) + (request.fd3 ? 1 : 0);
    const program = new RemoteProgram(pipes, {
      go: () => this.send({ op: 'go', id }),
      kill: () => this.send({ op: 'kill', id }),
    });
    this.track(id, program);
    const stop = () => {
      if (!program.abandon(stoppedBeforeStart())) return;
      // Whatever the launcher still sends about it is dropped (and its pipes closed).
      this.forget(id);
    };
    signal?.addEventListener('abort', stop, { once: true });
    void program.started.then(
      () => signal?.removeEventListener('abort', stop),
      () => signal?.removeEventListener('abort', stop),
    );
    this.send({ op: 'spawn', id, ...request });
    return program.started;
  }

  close(): void {
    if (this.process.connected) this.process.disconnect();
  }

  private send(message: object): void {
    if (!this.lost && this.process.connected) this.process.send(message);
  }

  /** The channel keeps the server alive only while a program is starting or running. */
  private track(id: number, program: RemoteProgram): void {
    if (this.programs.size === 0) this.process.channel?.ref();
    this.programs.set(id, program);
  }

  private forget(id: number): void {
    this.programs.delete(id);
    if (this.programs.size === 0) this.process.channel?.unref();
  }

  private received(message: LauncherMessage, pipe: Socket | undefined): void {
    const program = this.programs.get(message.id);
    if (program === undefined) {
      pipe?.destroy();
      return;
    }
    switch (message.op) {
      case 'spawned':
        program.spawned(message.pid);
        break;
      case 'pipe':
        // A handle can be refused (no descriptors left): the program cannot run without its pipe.
        if (pipe === undefined) {
          program.abandon(new LaunchFailed(`the pipe of descriptor ${message.fd} did not arrive`, undefined));
          this.forget(message.id);
        } else {
          program.piped(message.fd, pipe);
        }
        break;
      case 'failed':
        this.forget(message.id);
        program.failed(new LaunchFailed(message.message, message.code));
        break;
      case 'exit':
        this.forget(message.id);
        program.exited({ code: message.code, signal: message.signal });
        break;
    }
  }
}

const stoppedBeforeStart = () => new LaunchFailed('the start was stopped before it completed', undefined);

const STDIN_FD = 0;
const STDERR_FD = 2;
const PEAKS_FD = 3;

/** A program as the server sees it while the launcher runs it. */
class RemoteProgram implements LaunchedProcess {
  readonly started: Promise<LaunchedProcess>;
  readonly closed: Promise<ProcessEnd>;
  pid = 0;
  private readonly pipes = new Map<number, Socket>();
  private ended = false;
  private resolveStarted!: (program: LaunchedProcess) => void;
  private rejectStarted!: (error: Error) => void;
  private resolveExit!: (end: ProcessEnd) => void;
  private rejectClosed!: (error: Error) => void;

  constructor(
    private readonly expectedPipes: number,
    private readonly launcher: { go(): void; kill(): void },
  ) {
    this.started = new Promise((resolve, reject) => {
      this.resolveStarted = resolve;
      this.rejectStarted = reject;
    });
    const exit = new Promise<ProcessEnd>((resolve, reject) => {
      this.resolveExit = resolve;
      this.rejectClosed = reject;
    });
    this.closed = exit.then((end) => {
      const stderr = this.pipes.get(STDERR_FD);
      if (stderr === undefined || stderr.closed) return end;
      return new Promise((resolve) => stderr.once('close', () => resolve(end)));
    });
    // Callers await `closed` once started; before that, a loss is reported through `started`.
    this.closed.catch(() => undefined);
  }

  get stdin(): Writable | undefined {
    return this.pipes.get(STDIN_FD);
  }

  /** Present once started (`started` checks that it came). */
  get stderr(): Readable {
    return this.pipes.get(STDERR_FD) as Readable;
  }

  get fd3(): Readable | undefined {
    return this.pipes.get(PEAKS_FD);
  }

  spawned(pid: number): void {
    this.pid = pid;
  }

  piped(fd: number, pipe: Socket): void {
    // Pipes are socket pairs, and the server's end of stdin is readable too: when the program exits with
    // bytes of its input unread, that end is reset. The writer learns it from its next write; with no
    // writer left, the error must not bring down the server.
    // Its reading side ending must not end its writing side either: only the writer ends that.
    if (fd === STDIN_FD) {
      pipe.on('error', () => undefined);
      pipe.allowHalfOpen = true;
    }
    this.pipes.set(fd, pipe);
    if (this.pipes.size < this.expectedPipes) return;
    const stderr = this.pipes.get(STDERR_FD);
    if (stderr === undefined) {
      this.kill();
      this.rejectStarted(new LaunchFailed('the launcher sent no stderr pipe', undefined));
      return;
    }
    this.launcher.go();
    this.resolveStarted(this);
  }

  failed(error: Error): void {
    this.ended = true;
    this.rejectStarted(error);
    this.rejectClosed(error);
  }

  exited(end: ProcessEnd): void {
    this.ended = true;
    // Exited before it had all its pipes: sh was killed while held.
    if (this.pipes.size < this.expectedPipes) {
      this.destroyPipes();
      this.rejectStarted(
        new LaunchFailed(`the program ended before it started (${end.signal ?? end.code})`, undefined),
      );
    }
    this.resolveExit(end);
  }

  /** Gives up on a program that has not started: it is killed, and false if it had already started or ended. */
  abandon(error: LaunchFailed): boolean {
    if (this.ended || this.pipes.size >= this.expectedPipes) return false;
    this.kill();
    this.ended = true;
    this.destroyPipes();
    this.rejectStarted(error);
    this.rejectClosed(error);
    return true;
  }

  lost(error: LauncherLost): void {
    this.ended = true;
    // Its end of each pipe closes, so a program still running reads the end of its input and stops.
    this.destroyPipes();
    this.rejectStarted(error);
    this.rejectClosed(error);
  }

  kill(): void {
    if (!this.ended) this.launcher.kill();
  }

  private destroyPipes(): void {
    for (const pipe of this.pipes.values()) pipe.destroy();
  }
}
