import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import {
  hashApiKey,
  isApiKeyShaped,
  parseScopeClaim,
  requireCapability,
  viewerMay,
  type Capability,
} from './api-keys.js';
import type { Viewer } from './auth.js';

const viewer = (extra: Partial<Viewer> = {}): Viewer => ({
  userId: 'u1',
  token: 't',
  expiresAt: new Date(Date.now() + 60_000),
  ...extra,
});

describe('what a token may do', () => {
  const cases: Array<[string, Viewer, Record<Capability, boolean>]> = [
    ['a session', viewer({ sessionId: 's1' }), { read: true, convert: true, account: true }],
    ['a read key', viewer({ apiKeyId: 'k', scopes: ['read'] }), { read: true, convert: false, account: false }],
    [
      'a convert key',
      viewer({ apiKeyId: 'k', scopes: ['read', 'convert'] }),
      { read: true, convert: true, account: false },
    ],
    [
      'a convert-only claim',
      viewer({ apiKeyId: 'k', scopes: ['convert'] }),
      { read: true, convert: true, account: false },
    ],
    ['a key without scopes', viewer({ apiKeyId: 'k', scopes: [] }), { read: false, convert: false, account: false }],
  ];
  for (const [who, v, allowed] of cases) {
    it(`${who}: ${JSON.stringify(allowed)}`, () => {
      for (const capability of ['read', 'convert', 'account'] as const) {
        expect(viewerMay(v, capability), capability).toBe(allowed[capability]);
      }
    });
  }

  it('refuses with FORBIDDEN and names the missing capability', () => {
    let error: unknown;
    try {
      requireCapability(viewer({ apiKeyId: 'k', scopes: ['read'] }), 'convert');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(GraphQLError);
    expect((error as GraphQLError).extensions).toMatchObject({ code: 'FORBIDDEN', capability: 'convert' });
    expect(() => requireCapability(viewer({ apiKeyId: 'k', scopes: ['convert'] }), 'account')).toThrow(
      /cannot manage the account/,
    );
  });
});

describe('key format', () => {
  it('recognises vmp3_ and 43 base64url characters, nothing else', () => {
    expect(isApiKeyShaped(`vmp3_${'a'.repeat(43)}`)).toBe(true);
    expect(isApiKeyShaped(`vmp3_${'a'.repeat(42)}`)).toBe(false);
    expect(isApiKeyShaped(`vmp3_${'a'.repeat(42)}=`)).toBe(false);
    expect(isApiKeyShaped(`VMP3_${'a'.repeat(43)}`)).toBe(false);
    expect(hashApiKey('vmp3_x')).toHaveLength(32);
  });

  it('reads a scope claim, dropping unknown and repeated scopes', () => {
    expect(parseScopeClaim('read convert read admin')).toEqual(['read', 'convert']);
    expect(parseScopeClaim(undefined)).toEqual([]);
    expect(parseScopeClaim(['read'])).toEqual([]);
  });
});
