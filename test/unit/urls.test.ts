import type { FastifyRequest } from 'fastify';
import { describe, expect, it } from 'vitest';
import { publicBase, recordUrl } from '../../src/http/urls.js';

/** The parts of a request that publicBase reads. */
interface RequestParts {
  /** Fastify gives 'http' or 'https'; anything else tests that nothing else gets through. */
  readonly protocol: string;
  readonly host: string;
  readonly localAddress?: string;
  readonly localPort?: number;
}

/**
 * A stand-in for a FastifyRequest holding only what publicBase reads. FastifyRequest has dozens of members
 * (and a real socket), so the partial object is cast once, here, and nowhere else.
 */
function requestWith(parts: RequestParts): FastifyRequest {
  const request = {
    protocol: parts.protocol,
    host: parts.host,
    socket: { localAddress: parts.localAddress, localPort: parts.localPort },
  };
  return request as unknown as FastifyRequest;
}

describe('publicBase', () => {
  it('is PUBLIC_URL when configured, whatever the request says', () => {
    const request = requestWith({ protocol: 'http', host: 'evil.example', localAddress: '10.0.0.5', localPort: 80 });
    expect(publicBase('https://audio.example.com/base', request)).toBe('https://audio.example.com/base');
  });

  it.each([
    ['http', 'localhost:8000', 'http://localhost:8000'],
    ['https', 'audio.example.com', 'https://audio.example.com'],
    ['http', '192.168.1.20:8000', 'http://192.168.1.20:8000'],
    ['http', '[::1]:8000', 'http://[::1]:8000'],
    ['http', '[2001:db8::7]', 'http://[2001:db8::7]'],
    ['http', 'my_host.internal', 'http://my_host.internal'],
  ] as const)('with %s and Host %s is %s', (protocol, host, expected) => {
    expect(publicBase(undefined, requestWith({ protocol, host, localAddress: '10.9.9.9', localPort: 1 }))).toBe(
      expected,
    );
  });

  it.each([
    '',
    'evil.example/path',
    'evil.example?x=1',
    'user@evil.example',
    'evil.example:80:80',
    'a b',
    '-leading-dash',
    '::1',
    '[::1',
    'evil.example:port',
    'evil.example:123456',
    '"><script>',
    `${'a'.repeat(254)}`,
  ])('falls back to the local address for the malformed Host %j', (host) => {
    const request = requestWith({ protocol: 'http', host, localAddress: '10.0.0.5', localPort: 8000 });
    expect(publicBase(undefined, request)).toBe('http://10.0.0.5:8000');
  });

  it('brackets an IPv6 local address and unwraps an IPv4-mapped one', () => {
    expect(
      publicBase(undefined, requestWith({ protocol: 'http', host: '', localAddress: '::1', localPort: 8000 })),
    ).toBe('http://[::1]:8000');
    expect(
      publicBase(undefined, requestWith({ protocol: 'https', host: '', localAddress: '2001:db8::5', localPort: 443 })),
    ).toBe('https://[2001:db8::5]:443');
    expect(
      publicBase(
        undefined,
        requestWith({ protocol: 'http', host: '', localAddress: '::ffff:127.0.0.1', localPort: 80 }),
      ),
    ).toBe('http://127.0.0.1:80');
  });

  it('uses 127.0.0.1 without a port when the socket no longer knows its address', () => {
    expect(publicBase(undefined, requestWith({ protocol: 'http', host: 'bad host' }))).toBe('http://127.0.0.1');
  });

  it('only ever answers http or https', () => {
    expect(publicBase(undefined, requestWith({ protocol: 'HTTPS', host: 'x.example' }))).toBe('https://x.example');
    expect(publicBase(undefined, requestWith({ protocol: 'javascript', host: 'x.example' }))).toBe('http://x.example');
  });
});

describe('recordUrl', () => {
  const recordId = '3f2a7c1e-8a8b-4c5d-9e0f-0123456789ab';
  const userId = '0a1b2c3d-4e5f-4a6b-8c7d-9e8f7a6b5c4d';

  it('builds the link from the base, the route prefix and both ids', () => {
    expect(recordUrl('https://audio.example.com', '/api/v1', recordId, userId)).toBe(
      `https://audio.example.com/api/v1/record?record_id=${recordId}&user_id=${userId}`,
    );
  });

  it('encodes the ids as query values', () => {
    const url = recordUrl('http://h', '', 'a&b=c d', 'é/?#');
    expect(url).toBe('http://h/record?record_id=a%26b%3Dc+d&user_id=%C3%A9%2F%3F%23');
    const parsed = new URL(url);
    expect(parsed.searchParams.get('record_id')).toBe('a&b=c d');
    expect(parsed.searchParams.get('user_id')).toBe('é/?#');
  });
});
