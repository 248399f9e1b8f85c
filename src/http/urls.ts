import type { FastifyRequest } from 'fastify';

// A host name, IPv4 or bracketed IPv6 address, with an optional port: all a Host header may hold (RFC 9110 §7.2).
const AUTHORITY = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The origin clients reach this service at: PUBLIC_URL when configured, else the request's own
 * scheme and Host (X-Forwarded-* count only when TRUST_PROXY is on, which Fastify applies). A missing
 * or malformed Host (HTTP/1.0, a crafted header) falls back to the address the connection came in on,
 * which is a real interface address, never the 0.0.0.0 the server may listen on.
 */
export function publicBase(publicUrl: string | undefined, request: FastifyRequest): string {
  if (publicUrl !== undefined) return publicUrl;
  const protocol = request.protocol.toLowerCase() === 'https' ? 'https' : 'http';
  const host = request.host;
  return `${protocol}://${AUTHORITY.test(host) ? host : localAuthority(request)}`;
}

function localAuthority(request: FastifyRequest): string {
  const { localAddress = '127.0.0.1', localPort } = request.socket;
  const address = localAddress.replace(/^::ffff:(?=\d+\.)/, '');
  const host = address.includes(':') ? `[${address}]` : address;
  return localPort === undefined ? host : `${host}:${localPort}`;
}

export function recordUrl(base: string, prefix: string, recordId: string, userId: string, path = '/record'): string {
  const query = new URLSearchParams({ record_id: recordId, user_id: userId });
  return `${base}${prefix}${path}?${query.toString()}`;
}
