// SQLSTATE classes and codes that mean "the database cannot answer now", not "the query is wrong".
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0)/;
// postgres.js's own codes for a connection that failed, and Node's socket errors.
const UNAVAILABLE_CLIENT_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EPIPE',
]);

/** The driver's error behind Drizzle's wrapper, if any. */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current instanceof Error && chain.length < 5; current = current.cause) {
    chain.push(current);
  }
  return chain;
}

function codeOf(error: unknown): string | undefined {
  return error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
}

export function isDatabaseUnavailable(error: unknown): boolean {
  return causes(error).some((cause) => {
    const code = codeOf(cause);
    return code !== undefined && (UNAVAILABLE_CLIENT_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code));
  });
}

export function isUniqueViolation(error: unknown): boolean {
  return causes(error).some((cause) => codeOf(cause) === '23505');
}

export function isForeignKeyViolation(error: unknown): boolean {
  return causes(error).some((cause) => codeOf(cause) === '23503');
}

// The connection broke after the statement may have reached the server: whether it committed is unknown.
const OUTCOME_UNKNOWN_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
]);

/**
 * True when a write failed in a way that leaves its outcome unknown (the connection was lost mid-way), as
 * opposed to a definite failure: a refused connection, or an error the server answered with.
 */
export function isOutcomeUnknown(error: unknown): boolean {
  return causes(error).some((cause) => {
    const code = codeOf(cause);
    return code !== undefined && OUTCOME_UNKNOWN_CODES.has(code);
  });
}
