import { hostname } from 'node:os';

/** A process, as far as files left on a (possibly shared) disk can name one. */
export interface ProcessOwner {
  readonly host: string;
  readonly pid: number;
}

export function currentProcess(): ProcessOwner {
  return { host: hostname(), pid: process.pid };
}

/**
 * Whether the process that left a file may still be running. Another host's process cannot be checked
 * from here, so it counts as running. Our own pid counts as not running: it is an earlier life of a
 * process that restarted with the same pid (pid 1 in a container).
 */
export function mayStillRun(owner: ProcessOwner): boolean {
  const me = currentProcess();
  if (owner.host !== me.host) return true;
  if (owner.pid === me.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (error) {
    return error instanceof Error && 'code' in error && error.code === 'EPERM';
  }
}
