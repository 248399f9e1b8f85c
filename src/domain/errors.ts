/**
 * What can go wrong in a use case, said without HTTP. The HTTP layer maps each class to one status in a
 * single table (src/http/problems.ts); anything else that escapes a use case is a bug.
 */
export abstract class DomainError extends Error {
  override name = 'DomainError';

  constructor(
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(detail, options);
  }
}

/** A parameter or form value the client sent is malformed. */
export class InvalidInput extends DomainError {
  override name = 'InvalidInput';
}

/**
 * One answer for every authentication failure (missing, wrong or another user's token, unknown user),
 * so that nothing tells which part was wrong.
 */
export class Unauthorized extends DomainError {
  override name = 'Unauthorized';

  constructor() {
    super('Missing or invalid access token for this user.');
  }
}

/** The thing asked for does not exist, or is not the caller's: both look the same from outside. */
export class NotFound extends DomainError {
  override name = 'NotFound';
}

export class UsernameTaken extends DomainError {
  override name = 'UsernameTaken';

  constructor(username: string) {
    super(`The username "${username}" is already taken.`);
  }
}

/** The upload is larger than the configured limit. */
export class UploadTooLarge extends DomainError {
  override name = 'UploadTooLarge';
}

/** A request body (an upload, or any other) stopped arriving, or arrives too slowly to be honest. */
export class BodyTooSlow extends DomainError {
  override name = 'BodyTooSlow';
}

export type AudioRejection =
  /** The bytes are not a recording this service reads. */
  | 'unsupported-format'
  /** The format is right but the audio cannot be decoded, or there is none. */
  | 'undecodable'
  /** Longer than the duration limit. */
  | 'too-long';

export class AudioRejected extends DomainError {
  override name = 'AudioRejected';

  constructor(
    readonly reason: AudioRejection,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(detail, options);
  }
}

export class QuotaExceeded extends DomainError {
  override name = 'QuotaExceeded';
}

/** Every conversion slot and queue place is taken. */
export class Busy extends DomainError {
  override name = 'Busy';

  constructor(
    detail: string,
    readonly retryAfterSeconds: number,
  ) {
    super(detail);
  }
}

/** A part the service needs (the database, the converter) cannot be used now, or the service is stopping. */
export class Unavailable extends DomainError {
  override name = 'Unavailable';

  constructor(
    detail: string,
    readonly retryAfterSeconds: number,
    options?: { cause?: unknown },
  ) {
    super(detail, options);
  }
}

/** The disk is too full to take another recording. */
export class InsufficientStorage extends DomainError {
  override name = 'InsufficientStorage';
}

/** The client made too many requests of one kind. */
export class RateLimited extends DomainError {
  override name = 'RateLimited';

  constructor(
    detail: string,
    readonly retryAfterSeconds: number,
  ) {
    super(detail);
  }
}
