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
