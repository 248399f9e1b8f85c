import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const S3 = { STORAGE_DRIVER: 's3', S3_BUCKET: 'audio', S3_REGION: 'us-east-1' };

describe('storage settings', () => {
  it('keep audio on the local disk by default', () => {
    expect(loadConfig({}).storage).toEqual({ driver: 'local' });
    // S3 settings alone change nothing.
    expect(loadConfig({ S3_BUCKET: 'audio' }).storage).toEqual({ driver: 'local' });
  });

  it('read the S3 settings with their defaults', () => {
    expect(loadConfig(S3).storage).toEqual({
      driver: 's3',
      endpoint: undefined,
      region: 'us-east-1',
      bucket: 'audio',
      prefix: '',
      credentials: undefined,
      forcePathStyle: false,
      download: 'proxy',
      multipartThresholdBytes: 64 * 1024 ** 2,
      presignSeconds: 300,
    });
    expect(
      loadConfig({
        ...S3,
        S3_ENDPOINT: 'http://garage:3900/',
        S3_PREFIX: 'prod/audio',
        S3_ACCESS_KEY_ID: 'GK123',
        S3_SECRET_ACCESS_KEY: 'secret',
        S3_FORCE_PATH_STYLE: 'true',
        S3_DOWNLOAD: 'redirect',
        S3_MULTIPART_THRESHOLD_BYTES: '0',
        S3_PRESIGN_SECONDS: '60',
      }).storage,
    ).toEqual({
      driver: 's3',
      endpoint: 'http://garage:3900',
      region: 'us-east-1',
      bucket: 'audio',
      prefix: 'prod/audio/',
      credentials: { accessKeyId: 'GK123', secretAccessKey: 'secret' },
      forcePathStyle: true,
      download: 'redirect',
      multipartThresholdBytes: 0,
      presignSeconds: 60,
    });
  });

  it('name every missing or malformed S3 setting at once', () => {
    const message = (environment: Record<string, string>) => {
      try {
        loadConfig(environment);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
      throw new Error('loadConfig accepted it');
    };
    const missing = message({ STORAGE_DRIVER: 's3' });
    expect(missing).toContain('S3_BUCKET: required when STORAGE_DRIVER=s3');
    expect(missing).toContain('S3_REGION: required when STORAGE_DRIVER=s3');
    expect(message({ ...S3, S3_ACCESS_KEY_ID: 'GK123' })).toContain(
      'S3_SECRET_ACCESS_KEY: required with S3_ACCESS_KEY_ID',
    );
    expect(message({ ...S3, S3_SECRET_ACCESS_KEY: 'secret' })).toContain(
      'S3_ACCESS_KEY_ID: required with S3_SECRET_ACCESS_KEY',
    );
    expect(message({ ...S3, S3_PREFIX: '/audio' })).toContain('S3_PREFIX');
    expect(message({ ...S3, S3_PREFIX: 'a//b' })).toContain('S3_PREFIX: no empty segments');
    expect(message({ ...S3, S3_BUCKET: 'a/b' })).toContain('S3_BUCKET');
    expect(message({ ...S3, S3_ENDPOINT: 'garage:3900' })).toContain('S3_ENDPOINT');
    expect(message({ ...S3, S3_DOWNLOAD: 'direct' })).toContain('S3_DOWNLOAD');
    expect(message({ ...S3, S3_PRESIGN_SECONDS: '604800' })).toContain('S3_PRESIGN_SECONDS');
    expect(message({ STORAGE_DRIVER: 'gcs' })).toContain('STORAGE_DRIVER');
  });
});
