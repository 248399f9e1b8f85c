import type { FastifyRequest } from 'fastify';

/**
 * The origin clients reach this service at: PUBLIC_URL when configured, else the request's own
 * scheme and Host (X-Forwarded-* count only when TRUST_PROXY is on, which Fastify applies).
 */
export function publicBase(publicUrl: string | undefined, request: FastifyRequest): string {
  return publicUrl ?? `${request.protocol}://${request.host}`;
}

export function recordUrl(base: string, prefix: string, recordId: string, userId: string): string {
  const query = new URLSearchParams({ record_id: recordId, user_id: userId });
  return `${base}${prefix}/record?${query.toString()}`;
}
