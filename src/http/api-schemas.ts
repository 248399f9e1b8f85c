import { Type, type Static } from 'typebox';
import { MAX_USERNAME_LENGTH } from '../services/accounts.js';
import { MAX_TITLE_LENGTH } from '../services/recordings.js';

// A UUID in its canonical text form only: no braces, no "urn:uuid:" prefix (which the "uuid" format allows).
const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

const Uuid = (description: string) =>
  Type.String({ pattern: UUID_PATTERN, description, examples: ['2085f8b6-70fe-4253-ade0-cdbfe9892082'] });

/** The token is checked by the auth code, which answers 401 for anything wrong, malformed included. */
const AccessTokenQuery = Type.Optional(
  Type.String({
    maxLength: 128,
    description: 'The access token. Prefer the `Authorization: Bearer` header: query strings end up in logs.',
  }),
);

export const CreateUserQuery = Type.Object(
  {
    username: Type.String({
      minLength: 1,
      // Checked again after trimming and in code points; this bound only keeps garbage out early.
      maxLength: MAX_USERNAME_LENGTH * 4,
      description: `1–${MAX_USERNAME_LENGTH} characters after trimming; letters of any script.`,
      examples: ['john_doe'],
    }),
  },
  { additionalProperties: true },
);

export const CreatedUser = Type.Object({
  user_id: Uuid('The new user’s id.'),
  access_token: Uuid('The user’s access token. It is shown only now: store it.'),
});

export const UploadQuery = Type.Object({
  user_id: Uuid('The uploading user’s id.'),
  access_token: AccessTokenQuery,
  title: Type.Optional(
    Type.String({
      maxLength: MAX_TITLE_LENGTH * 4,
      description: 'A title for the recording (or a multipart field `title`).',
    }),
  ),
  ...outputOptions(),
});

/** The output options, as query parameters; a multipart field of the same name, before the file, wins. */
function outputOptions() {
  const option = (description: string, examples: string[]) =>
    Type.Optional(Type.String({ maxLength: 16, description, examples }));
  return {
    format: option('The stored format: mp3 (default), opus (Ogg), m4a (AAC) or flac.', ['opus']),
    quality: option('A preset: voice (mono, speech-tuned, small), standard (default) or high.', ['voice']),
    bitrate: option('An explicit bitrate in kbit/s, instead of a quality preset; not for flac.', ['64']),
    channels: option('1 or 2; by default mono stays mono and anything wider becomes stereo.', ['1']),
    sample_rate: option('The output sample rate in Hz, one the format allows.', ['48000']),
    normalize: option('true: normalise the loudness (EBU R128) to the server’s target.', ['true']),
  };
}

/** BBC audiowaveform's JSON format, as wavesurfer.js and peaks.js read it. */
export const PeaksResponse = Type.Object(
  {
    version: Type.Literal(2),
    channels: Type.Literal(1),
    sample_rate: Type.Integer({ description: 'The rate the peaks were computed at.' }),
    samples_per_pixel: Type.Integer({ description: 'Samples per min/max pair.' }),
    bits: Type.Literal(8),
    length: Type.Integer({ description: 'Number of min/max pairs.' }),
    data: Type.Array(Type.Integer({ minimum: -128, maximum: 127 }), { description: 'min0, max0, min1, max1 …' }),
  },
  {
    examples: [
      {
        version: 2,
        channels: 1,
        sample_rate: 8000,
        samples_per_pixel: 160,
        bits: 8,
        length: 2,
        data: [-3, 5, -40, 38],
      },
    ],
  },
);

export const RecordUrl = Type.Object({
  record_url: Type.String({
    description: 'Where the stored audio downloads.',
    examples: [
      'http://localhost:8000/api/v1/record?record_id=b88b0965-ff26-4b1c-be89-7efe2e8bcddc&user_id=2085f8b6-70fe-4253-ade0-cdbfe9892082',
    ],
  }),
});

export const DownloadQuery = Type.Object({
  record_id: Uuid('The record’s id, from its record_url.'),
  user_id: Uuid('The owner’s id, from the record_url.'),
});

export const RecordMetadata = Type.Object({
  record_url: RecordUrl.properties.record_url,
  record_id: Uuid('The record’s id.'),
  user_id: Uuid('The owner’s id.'),
  title: Type.Union([Type.String(), Type.Null()]),
  original_filename: Type.Union([Type.String(), Type.Null()], { description: 'The uploaded file’s name, as sent.' }),
  created_at: Type.String({ format: 'date-time' }),
  duration_seconds: Type.Number({ description: 'Length of the audio, in seconds.' }),
  size_bytes: Type.Integer({ description: 'Size of the stored audio file.' }),
  sample_rate: Type.Integer({ description: 'Sample rate of the stored audio, in Hz.' }),
  channels: Type.Integer({ description: 'Channels of the stored audio.' }),
  bitrate_kbps: Type.Integer({ description: 'Average bitrate of the stored audio, in kbit/s.' }),
  format: Type.String({ description: 'The stored format, also the download’s extension: mp3, opus, m4a or flac.' }),
  mime_type: Type.String({ description: 'The download’s Content-Type.' }),
  source_format: Type.String({
    description: 'What was uploaded, judged from its bytes: wav, flac, ogg, webm, matroska, mp4, mp3, aiff or amr.',
  }),
  loudness_lufs: Type.Optional(
    Type.Number({ description: 'Integrated loudness of the stored audio; present when it was normalised.' }),
  ),
  peaks_url: Type.String({ description: 'The waveform peaks, for holders of the link as for `record_url`.' }),
  share_url: Type.String({
    description: 'The web app’s page for the record (title, player, waveform, download), for holders of the link.',
  }),
});
export type RecordMetadata = Static<typeof RecordMetadata>;

/** RFC 9457 problem details; `detail` keeps clients written for FastAPI's `{"detail": …}` working. */
export const ProblemDetails = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
});

export const Health = Type.Object({ status: Type.String() });

// --- Managing records and accounts ---

const EXAMPLE_USER_ID = '2085f8b6-70fe-4253-ade0-cdbfe9892082';
const EXAMPLE_RECORD_ID = 'b88b0965-ff26-4b1c-be89-7efe2e8bcddc';
const MAX_PAGE_SIZE = 200;

/** The owner and the token that proves it, for routes about one user's records. */
export const OwnerQuery = Type.Object({
  user_id: Uuid('The owner’s id.'),
  access_token: AccessTokenQuery,
});

export const ListRecordsQuery = Type.Object({
  user_id: Uuid('The owner’s id.'),
  access_token: AccessTokenQuery,
  limit: Type.Integer({
    minimum: 1,
    maximum: MAX_PAGE_SIZE,
    default: 50,
    description: `Records per page, 1–${MAX_PAGE_SIZE}.`,
  }),
  cursor: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'The `next_cursor` of the previous page; omit it for the first page.',
    }),
  ),
  q: Type.Optional(
    Type.String({
      maxLength: MAX_TITLE_LENGTH * 4,
      description: 'Only records whose title contains this text, ignoring case.',
      examples: ['interview'],
    }),
  ),
});

export const RecordListResponse = Type.Object(
  {
    records: Type.Array(RecordMetadata, { description: 'Newest first.' }),
    next_cursor: Type.Union([Type.String(), Type.Null()], {
      description: 'Pass as `cursor` for the next page; null on the last page.',
    }),
  },
  {
    examples: [
      {
        records: [
          {
            record_url: `http://localhost:8000/api/v1/record?record_id=${EXAMPLE_RECORD_ID}&user_id=${EXAMPLE_USER_ID}`,
            record_id: EXAMPLE_RECORD_ID,
            user_id: EXAMPLE_USER_ID,
            title: 'Interview, take 2',
            original_filename: 'interview.wav',
            created_at: '2026-11-28T09:14:38.209Z',
            duration_seconds: 183.52,
            size_bytes: 2905113,
            sample_rate: 44100,
            channels: 2,
            bitrate_kbps: 127,
          },
        ],
        next_cursor: 'WyIyMDI2LTExLTI4VDA5OjE0OjM4LjIwOTQzMVoiLDQyXQ',
      },
    ],
  },
);

export const RecordParams = Type.Object({
  record_id: Uuid('The record’s id.'),
});

export const RenameRecordBody = Type.Object(
  {
    title: Type.Union([Type.String({ maxLength: MAX_TITLE_LENGTH * 4 }), Type.Null()], {
      description: `The new title, 1–${MAX_TITLE_LENGTH} characters after trimming; null or blank removes it.`,
    }),
  },
  { additionalProperties: false, examples: [{ title: 'Interview, final cut' }] },
);

export const UserParams = Type.Object({
  user_id: Uuid('The user’s id.'),
});

export const TokenOnlyQuery = Type.Object({
  access_token: AccessTokenQuery,
});

export const NewAccessToken = Type.Object(
  {
    user_id: Uuid('The user’s id.'),
    access_token: Uuid('The new access token. It is shown only now: store it. The old one no longer works.'),
  },
  { examples: [{ user_id: EXAMPLE_USER_ID, access_token: '5f0c2a71-2b1e-4c55-9a7e-0d3f4b8e6c19' }] },
);

export const CurrentUser = Type.Object(
  {
    user_id: Uuid('The user’s id.'),
    username: Type.String(),
    created_at: Type.String({ format: 'date-time' }),
    record_count: Type.Integer({ description: 'Records the user keeps.' }),
    total_bytes: Type.Integer({ description: 'Bytes of MP3 the user stores.' }),
  },
  {
    examples: [
      {
        user_id: EXAMPLE_USER_ID,
        username: 'john_doe',
        created_at: '2026-11-28T09:12:01.005Z',
        record_count: 12,
        total_bytes: 31457280,
      },
    ],
  },
);
