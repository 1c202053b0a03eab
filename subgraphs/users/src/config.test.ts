import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '@vidmp3/shared';
import { ConfigSchema } from './config.js';

/** The problems a configuration is refused with; fails the test when it is accepted. */
function problems(env: Record<string, string>): string[] {
  try {
    parseConfig(ConfigSchema, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the configuration to be refused');
}

describe('the users configuration, sessions', () => {
  it('defaults to 15-minute access tokens and 30-day refresh tokens in sessions of at most 90 days', () => {
    expect(parseConfig(ConfigSchema, {})).toMatchObject({
      ACCESS_TOKEN_TTL_SECONDS: 900,
      REFRESH_TOKEN_TTL_SECONDS: 30 * 86_400,
      SESSION_MAX_AGE_SECONDS: 90 * 86_400,
    });
  });

  it('refuses a refresh token that would not outlive the access tokens it renews', () => {
    expect(problems({ ACCESS_TOKEN_TTL_SECONDS: '3600', REFRESH_TOKEN_TTL_SECONDS: '3600' })).toEqual([
      'REFRESH_TOKEN_TTL_SECONDS: must be longer than ACCESS_TOKEN_TTL_SECONDS (a refresh token renews access tokens)',
    ]);
  });

  it('refuses a session maximum age shorter than one refresh token lifetime', () => {
    expect(problems({ REFRESH_TOKEN_TTL_SECONDS: '86400', SESSION_MAX_AGE_SECONDS: '3600' })).toEqual([
      'SESSION_MAX_AGE_SECONDS: must be at least REFRESH_TOKEN_TTL_SECONDS',
    ]);
  });
});

describe('the users configuration, webhooks', () => {
  it('allows loopback targets in development only, and http outside production', () => {
    expect(parseConfig(ConfigSchema, {})).toMatchObject({ WEBHOOK_ALLOW_LOOPBACK: true, WEBHOOK_ALLOW_HTTP: true });
    expect(parseConfig(ConfigSchema, { NODE_ENV: 'test' })).toMatchObject({
      WEBHOOK_ALLOW_LOOPBACK: false,
      WEBHOOK_ALLOW_HTTP: true,
    });
  });

  it('needs a 32-byte secret key in production, and never allows loopback there', () => {
    expect(problems({ NODE_ENV: 'production', JWT_PRIVATE_KEY: 'pem', WEBHOOK_ALLOW_LOOPBACK: 'true' })).toEqual([
      'WEBHOOK_SECRET_KEY: required in production (32 bytes in base64: openssl rand -base64 32)',
      'INTERNAL_API_TOKEN: required in production',
      'WEBHOOK_ALLOW_LOOPBACK: must not be true in production (webhooks would reach services on the host)',
    ]);
    expect(problems({ WEBHOOK_SECRET_KEY: Buffer.alloc(16).toString('base64') })).toEqual([
      'WEBHOOK_SECRET_KEY: must be 32 bytes in base64 (openssl rand -base64 32)',
    ]);
    expect(
      parseConfig(ConfigSchema, {
        NODE_ENV: 'production',
        JWT_PRIVATE_KEY: 'pem',
        WEBHOOK_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'),
        INTERNAL_API_TOKEN: 'a-service-token-of-enough-length',
      }),
    ).toMatchObject({ WEBHOOK_ALLOW_LOOPBACK: false, WEBHOOK_ALLOW_HTTP: false });
  });
});
