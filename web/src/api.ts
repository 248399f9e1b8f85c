/**
 * The service's public API, as the page uses it: the same routes and fields any other client has
 * (README, /docs). Nothing here is private to the page.
 */

const BASE = '/api/v1';

export interface Credentials {
  readonly userId: string;
  readonly accessToken: string;
}

export interface RecordMetadata {
  readonly record_url: string;
  readonly peaks_url: string;
  readonly share_url: string;
  readonly record_id: string;
  readonly user_id: string;
  readonly title: string | null;
  readonly original_filename: string | null;
  readonly created_at: string;
  readonly duration_seconds: number;
  readonly size_bytes: number;
  readonly sample_rate: number;
  readonly channels: number;
  readonly bitrate_kbps: number;
  readonly format: string;
  readonly mime_type: string;
  readonly source_format: string;
  readonly loudness_lufs?: number;
}

export interface RecordPage {
  readonly records: RecordMetadata[];
  readonly next_cursor: string | null;
}

export interface Account {
  readonly user_id: string;
  readonly username: string;
  readonly created_at: string;
  readonly record_count: number;
  readonly total_bytes: number;
}

/** BBC audiowaveform's JSON (version 2), as the peaks routes answer it. */
export interface Peaks {
  readonly sample_rate: number;
  readonly samples_per_pixel: number;
  readonly length: number;
  /** `length` pairs, min then max, −128…127. */
  readonly data: number[];
}

/** The upload's output options (README, "Outputs"); unset ones are left to the service. */
export interface OutputOptions {
  readonly format?: 'mp3' | 'opus' | 'm4a' | 'flac';
  readonly quality?: 'voice' | 'standard' | 'high';
  readonly bitrate?: number;
  readonly channels?: 1 | 2;
  readonly sample_rate?: number;
  readonly normalize?: boolean;
}

/** A problem document (RFC 9457) the service answered, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly detail: string,
    /** From Retry-After, for 429 and 503. */
    readonly retryAfterSeconds: number | undefined,
  ) {
    super(detail);
    this.name = 'ApiError';
  }
}

interface CallOptions {
  readonly method?: string;
  readonly query?: Record<string, string | number | undefined>;
  readonly credentials?: Credentials;
  readonly json?: unknown;
  readonly accept?: string;
}

function urlOf(path: string, query: CallOptions['query'] = {}): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined) search.set(name, String(value));
  const text = search.toString();
  return text === '' ? `${BASE}${path}` : `${BASE}${path}?${text}`;
}

function headersOf(options: CallOptions): Record<string, string> {
  const headers: Record<string, string> = { accept: options.accept ?? 'application/json' };
  // The token travels in a header, never in a URL that could end up in a log or the history.
  if (options.credentials) headers.authorization = `Bearer ${options.credentials.accessToken}`;
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  return headers;
}

async function call<T>(path: string, options: CallOptions = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(urlOf(path, options.query), {
      method: options.method ?? 'GET',
      headers: headersOf(options),
      ...(options.json === undefined ? {} : { body: JSON.stringify(options.json) }),
    });
  } catch {
    throw new ApiError(0, 'network', '', undefined);
  }
  if (!response.ok) throw await errorOf(response.status, response.headers.get('retry-after'), () => response.text());
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

async function errorOf(status: number, retryAfter: string | null, body: () => Promise<string>): Promise<ApiError> {
  let type = 'about:blank';
  let detail = '';
  try {
    const problem = JSON.parse(await body()) as { type?: unknown; detail?: unknown };
    if (typeof problem.type === 'string') type = problem.type;
    if (typeof problem.detail === 'string') detail = problem.detail;
  } catch {
    // Not a problem document (a proxy's page): the status alone says what happened.
  }
  const seconds = retryAfter === null ? NaN : Number(retryAfter);
  return new ApiError(status, type, detail, Number.isFinite(seconds) ? seconds : undefined);
}

const mine = (credentials: Credentials) => ({ user_id: credentials.userId });

export const api = {
  createUser: (username: string) =>
    call<{ user_id: string; access_token: string }>('/users/', { method: 'POST', query: { username } }),
  me: (credentials: Credentials) => call<Account>('/users/me', { credentials }),
  rotateToken: (credentials: Credentials) =>
    call<{ user_id: string; access_token: string }>(`/users/${credentials.userId}/token`, {
      method: 'POST',
      credentials,
    }),
  deleteAccount: (credentials: Credentials) =>
    call<void>(`/users/${credentials.userId}`, { method: 'DELETE', credentials }),

  listRecords: (credentials: Credentials, page: { cursor?: string; q?: string; limit?: number }) =>
    call<RecordPage>('/records', { credentials, query: { ...mine(credentials), ...page } }),
  renameRecord: (credentials: Credentials, recordId: string, title: string | null) =>
    call<RecordMetadata>(`/records/${recordId}`, {
      method: 'PATCH',
      credentials,
      query: mine(credentials),
      json: { title },
    }),
  deleteRecord: (credentials: Credentials, recordId: string) =>
    call<void>(`/records/${recordId}`, { method: 'DELETE', credentials, query: mine(credentials) }),

  /** A record's metadata by its link's two ids, without a token: what the share page shows. */
  sharedRecord: (recordId: string, userId: string) =>
    call<RecordMetadata>('/record', { query: { record_id: recordId, user_id: userId } }),
  peaks: async (record: RecordMetadata): Promise<Peaks> => {
    const response = await fetch(linkOf(record, '/record/peaks'), { headers: { accept: 'application/json' } });
    if (!response.ok) throw await errorOf(response.status, null, () => response.text());
    return (await response.json()) as Peaks;
  },
};

/**
 * A record's audio (or peaks) on this page's own origin. `record_url` starts with PUBLIC_URL, which may be
 * another origin than the one the page was opened on, where the CSP would refuse it; the ids are the link.
 */
export function linkOf(record: RecordMetadata, path: '/record' | '/record/peaks' = '/record'): string {
  return urlOf(path, { record_id: record.record_id, user_id: record.user_id });
}

export interface UploadProgress {
  readonly sentBytes: number;
  readonly totalBytes: number;
  /** Every byte is sent: the service is converting the rest. */
  readonly converting: boolean;
}

export interface Upload {
  readonly done: Promise<{ record_url: string }>;
  cancel(): void;
}

/**
 * Uploads one file with its options and title. XMLHttpRequest rather than fetch: only it reports
 * the bytes sent. Options go before the file, as the service requires; the title after it is fine.
 */
export function upload(
  credentials: Credentials,
  file: Blob,
  fileName: string,
  fields: { title?: string; options?: OutputOptions },
  onProgress: (progress: UploadProgress) => void,
): Upload {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields.options ?? {}))
    if (value !== undefined) form.append(name, String(value));
  if (fields.title !== undefined && fields.title.trim() !== '') form.append('title', fields.title.trim());
  form.append('file', file, fileName);

  const request = new XMLHttpRequest();
  const done = new Promise<{ record_url: string }>((resolve, reject) => {
    request.upload.onprogress = (event) => {
      const totalBytes = event.lengthComputable ? event.total : file.size;
      onProgress({ sentBytes: event.loaded, totalBytes, converting: event.loaded >= totalBytes });
    };
    request.upload.onload = () => onProgress({ sentBytes: file.size, totalBytes: file.size, converting: true });
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) {
        // A 2xx that is not the service's JSON (a proxy's page) would otherwise leave the promise pending forever.
        try {
          resolve(JSON.parse(request.responseText) as { record_url: string });
        } catch {
          reject(new ApiError(request.status, 'about:blank', '', undefined));
        }
        return;
      }
      void errorOf(request.status, request.getResponseHeader('retry-after'), async () => request.responseText).then(
        reject,
      );
    };
    request.onerror = () => reject(new ApiError(0, 'network', '', undefined));
    request.onabort = () => reject(new ApiError(0, 'aborted', '', undefined));
  });
  request.open('POST', urlOf('/record/', mine(credentials)));
  request.setRequestHeader('authorization', `Bearer ${credentials.accessToken}`);
  request.setRequestHeader('accept', 'application/json');
  request.send(form);
  return { done, cancel: () => request.abort() };
}
