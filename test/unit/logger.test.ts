import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger, redactUrl } from '../../src/logger.js';

describe('redactUrl', () => {
  it.each([
    ['/api/v1/record?access_token=s3cret', '/api/v1/record?access_token=[redacted]'],
    ['/r?access_token=s3cret&user_id=u&record_id=r', '/r?access_token=[redacted]&user_id=u&record_id=r'],
    ['/r?user_id=u&access_token=s3cret&record_id=r', '/r?user_id=u&access_token=[redacted]&record_id=r'],
    ['/r?user_id=u&record_id=r&access_token=s3cret', '/r?user_id=u&record_id=r&access_token=[redacted]'],
    ['/r?access_token=a&access_token=b', '/r?access_token=[redacted]&access_token=[redacted]'],
    ['/r?access%5Ftoken=s3cret', '/r?access%5Ftoken=[redacted]'],
    ['/r?access%5ftoken=s3cret', '/r?access%5ftoken=[redacted]'],
    ['/r?%61ccess_token=s3cret', '/r?%61ccess_token=[redacted]'],
    ['/r?access_token=s3c+r%20et', '/r?access_token=[redacted]'],
    ['/r?access_token', '/r?access_token=[redacted]'],
    ['/r?access_token=', '/r?access_token=[redacted]'],
    ['/r?access_token=a=b=c', '/r?access_token=[redacted]'],
  ])('%s → %s', (url, expected) => {
    expect(redactUrl(url)).toBe(expected);
  });

  it.each([
    '/api/v1/users',
    '/r?',
    '/r?user_id=u&record_id=r',
    '/r?title=a+b%20c&limit=10',
    '/r?my_access_token=x',
    '/r?access_tokens=x',
    // "+" is a space in a query name: this is "access token", which the parser does not read as the token.
    '/r?access+token=x',
    // A malformed escape cannot be decoded, so it cannot be the token's name either.
    '/r?access%ZZtoken=x',
  ])('leaves %s as it was', (url) => {
    expect(redactUrl(url)).toBe(url);
  });
});

describe('createLogger', () => {
  function capture() {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString('utf8'));
        callback();
      },
    });
    const logger = createLogger(loadConfig({ LOG_LEVEL: 'info' }), stream);
    return { logger, lines };
  }

  it('blanks the Authorization header wherever a headers object is logged', () => {
    const { logger, lines } = capture();
    logger.info({ headers: { authorization: 'Bearer s3cret-1', accept: 'audio/mpeg' } }, 'top level');
    logger.info({ busboyOptions: { headers: { authorization: 'Bearer s3cret-2' } } }, 'multipart trace');
    logger.child({ reqId: 'req-1' }).warn({ headers: { authorization: 'Bearer s3cret-3' } }, 'child logger');
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      expect(line).not.toMatch(/s3cret/);
      expect(line).toContain('[redacted]');
    }
    const first = JSON.parse(lines[0] ?? '{}') as { headers: Record<string, string> };
    expect(first.headers).toEqual({ authorization: '[redacted]', accept: 'audio/mpeg' });
  });

  it('logs a request with its URL redacted and without its headers', () => {
    const { logger, lines } = capture();
    logger.info(
      {
        req: {
          method: 'GET',
          url: '/api/v1/record?user_id=u&access_token=s3cret',
          hostname: 'audio.example.com',
          ip: '203.0.113.7',
          headers: { authorization: 'Bearer s3cret' },
        },
      },
      'incoming request',
    );
    const line = JSON.parse(lines[0] ?? '{}') as { req: Record<string, unknown>; msg: string };
    expect(line.msg).toBe('incoming request');
    expect(line.req).toEqual({
      method: 'GET',
      url: '/api/v1/record?user_id=u&access_token=[redacted]',
      host: 'audio.example.com',
      remoteAddress: '203.0.113.7',
    });
    expect(lines[0]).not.toContain('s3cret');
  });

  it('follows the configured level', () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString('utf8'));
        callback();
      },
    });
    const logger = createLogger(loadConfig({ LOG_LEVEL: 'warn' }), stream);
    logger.info({}, 'quiet');
    logger.warn({}, 'loud');
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(['loud']);
  });
});
