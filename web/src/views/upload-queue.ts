import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, upload, type Credentials, type OutputOptions, type Upload } from '../api';
import { currentCredentials } from '../session';

/** Uploads at once: more would only split the same connection and make each file's progress crawl. */
const RUNNING_AT_ONCE = 2;
/** A service that stays busy this many times in a row is left for the person to retry. */
const AUTOMATIC_RETRIES = 10;
/** When a 503 does not say how long to wait. */
const DEFAULT_RETRY_SECONDS = 5;

export type Origin = 'files' | 'recorder';

type Phase =
  /** Picked, its title still editable; not started. */
  | { readonly kind: 'ready' }
  /** Started, waiting for one of the running uploads to finish. */
  | { readonly kind: 'queued' }
  | { readonly kind: 'sending'; readonly sentBytes: number; readonly totalBytes: number }
  /** Every byte is sent: the service is converting. Cancelling now would not stop it. */
  | { readonly kind: 'converting'; readonly totalBytes: number }
  /** The service was busy (503): sent again by itself at `retryAt` (ms since the epoch). */
  | { readonly kind: 'waiting'; readonly retryAt: number }
  | { readonly kind: 'done'; readonly recordId: string; readonly userId: string }
  | { readonly kind: 'failed'; readonly error: unknown };

export interface UploadJob {
  readonly id: number;
  readonly origin: Origin;
  readonly userId: string;
  readonly file: Blob;
  readonly fileName: string;
  readonly title: string;
  readonly phase: Phase;
}

interface Entry {
  job: UploadJob;
  options: OutputOptions;
  retries: number;
  request?: Upload;
  retryTimer?: ReturnType<typeof setTimeout>;
}

/** Errors that another try of the same file with the same options cannot fix. */
const FINAL_STATUSES = new Set([413, 415, 422]);

export function canRetry(error: unknown): boolean {
  return !(error instanceof ApiError && FINAL_STATUSES.has(error.status));
}

/**
 * Every upload of the page, kept outside the views so that one running upload survives a visit to
 * another view, and so that the file list and the recorder share one limit of uploads at once.
 */
class UploadQueue {
  private readonly entries = new Map<number, Entry>();
  private readonly listeners = new Set<() => void>();
  private readonly uploadedListeners = new Set<(origin: Origin) => void>();
  private nextId = 1;

  jobs(): UploadJob[] {
    return [...this.entries.values()].map((entry) => entry.job);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onUploaded(listener: (origin: Origin) => void): () => void {
    this.uploadedListeners.add(listener);
    return () => this.uploadedListeners.delete(listener);
  }

  add(origin: Origin, credentials: Credentials, files: ReadonlyArray<{ file: Blob; name: string; title: string }>) {
    const ids: number[] = [];
    for (const { file, name, title } of files) {
      const id = this.nextId++;
      ids.push(id);
      this.entries.set(id, {
        job: { id, origin, userId: credentials.userId, file, fileName: name, title, phase: { kind: 'ready' } },
        options: {},
        retries: 0,
      });
    }
    this.changed();
    return ids;
  }

  setTitle(id: number, title: string): void {
    const entry = this.entries.get(id);
    if (entry?.job.phase.kind !== 'ready') return;
    entry.job = { ...entry.job, title };
    this.changed();
  }

  /** Starts the given jobs (ready or failed ones) with these options, as slots free up. */
  start(ids: readonly number[], options: OutputOptions): void {
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (entry === undefined) continue;
      const kind = entry.job.phase.kind;
      if (kind !== 'ready' && kind !== 'failed') continue;
      entry.options = options;
      entry.retries = 0;
      this.setPhase(entry, { kind: 'queued' });
    }
    this.pump();
  }

  cancel(id: number): void {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    const kind = entry.job.phase.kind;
    if (kind !== 'queued' && kind !== 'sending' && kind !== 'waiting') return;
    clearTimeout(entry.retryTimer);
    const request = entry.request;
    entry.request = undefined;
    request?.cancel();
    this.setPhase(entry, { kind: 'failed', error: new ApiError(0, 'aborted', '', undefined) });
    this.pump();
  }

  remove(id: number): void {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    const kind = entry.job.phase.kind;
    if (kind !== 'ready' && kind !== 'done' && kind !== 'failed') return;
    this.entries.delete(id);
    this.changed();
  }

  private running(): number {
    let count = 0;
    for (const entry of this.entries.values()) if (entry.request !== undefined) count++;
    return count;
  }

  private pump(): void {
    for (const entry of this.entries.values()) {
      if (this.running() >= RUNNING_AT_ONCE) return;
      if (entry.job.phase.kind === 'queued') this.send(entry);
    }
  }

  /** Cancels every upload and forgets every file: the person signed out or left the account. */
  clear(): void {
    for (const entry of this.entries.values()) {
      clearTimeout(entry.retryTimer);
      const request = entry.request;
      entry.request = undefined;
      request?.cancel();
    }
    this.entries.clear();
    this.changed();
  }

  private send(entry: Entry): void {
    const { file, fileName, title } = entry.job;
    // The token of now, not of when the file was picked: a rotation in between must not fail the upload.
    const credentials = currentCredentials();
    if (credentials?.userId !== entry.job.userId) {
      this.setPhase(entry, { kind: 'failed', error: new ApiError(401, 'about:blank', '', undefined) });
      return;
    }
    this.setPhase(entry, { kind: 'sending', sentBytes: 0, totalBytes: file.size });
    const request = upload(credentials, file, fileName, { title, options: entry.options }, (progress) => {
      if (entry.request !== request) return;
      this.setPhase(
        entry,
        progress.converting
          ? { kind: 'converting', totalBytes: progress.totalBytes }
          : { kind: 'sending', sentBytes: progress.sentBytes, totalBytes: progress.totalBytes },
      );
    });
    entry.request = request;
    request.done.then(
      ({ record_url }) => {
        if (entry.request !== request) return;
        entry.request = undefined;
        const url = new URL(record_url, location.href);
        this.setPhase(entry, {
          kind: 'done',
          recordId: url.searchParams.get('record_id') ?? '',
          userId: url.searchParams.get('user_id') ?? entry.job.userId,
        });
        for (const listener of this.uploadedListeners) listener(entry.job.origin);
        this.pump();
      },
      (error: unknown) => {
        // A cancelled request has already been marked; its abort is no news.
        if (entry.request !== request) return;
        entry.request = undefined;
        if (error instanceof ApiError && error.status === 503 && entry.retries < AUTOMATIC_RETRIES) {
          entry.retries += 1;
          const seconds = error.retryAfterSeconds ?? DEFAULT_RETRY_SECONDS;
          this.setPhase(entry, { kind: 'waiting', retryAt: Date.now() + seconds * 1000 });
          entry.retryTimer = setTimeout(() => {
            if (entry.job.phase.kind !== 'waiting') return;
            this.setPhase(entry, { kind: 'queued' });
            this.pump();
          }, seconds * 1000);
        } else {
          this.setPhase(entry, { kind: 'failed', error });
        }
        this.pump();
      },
    );
  }

  private setPhase(entry: Entry, phase: Phase): void {
    entry.job = { ...entry.job, phase };
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

export const uploadQueue = new UploadQueue();

/** The jobs of one origin and user, following every change; `onUploaded` runs when one of them is stored. */
export function useUploadJobs(origin: Origin, userId: string, onUploaded: () => void): UploadJob[] {
  const [jobs, setJobs] = useState(() => uploadQueue.jobs());
  const uploaded = useRef(onUploaded);
  uploaded.current = onUploaded;
  useEffect(() => {
    const unsubscribe = uploadQueue.subscribe(() => setJobs(uploadQueue.jobs()));
    const stopListening = uploadQueue.onUploaded((from) => {
      if (from === origin) uploaded.current();
    });
    setJobs(uploadQueue.jobs());
    return () => {
      unsubscribe();
      stopListening();
    };
  }, [origin]);
  return jobs.filter((job) => job.origin === origin && job.userId === userId);
}
