import { describe, expect, it } from 'vitest';
import { cookieValue, csrfRefusal, refreshCookie } from './browser-session.js';

const own = ['http://127.0.0.1:4000', 'https://127.0.0.1:4000'];
const page = { origin: own[0], custom: '1', fetchSite: 'same-origin' };

describe('csrfRefusal (who may use the session cookie)', () => {
  it("lets the gateway's own page and a configured origin through", () => {
    expect(csrfRefusal(page, own, [])).toBeUndefined();
    expect(csrfRefusal({ ...page, fetchSite: undefined }, own, [])).toBeUndefined();
    expect(csrfRefusal({ ...page, origin: own[1] }, own, [])).toBeUndefined();
    expect(csrfRefusal({ ...page, origin: 'https://app.example' }, own, ['https://app.example/'])).toBeUndefined();
  });

  it.each([
    ['another origin', { ...page, origin: 'https://evil.example' }],
    ['the same host on another port', { ...page, origin: 'http://127.0.0.1:4001' }],
    ['no Origin', { ...page, origin: undefined }],
    ['an opaque origin (sandboxed frame, file:)', { ...page, origin: 'null' }],
    ['no custom header (a form post)', { ...page, custom: undefined }],
    ['a request the browser marks cross-site', { ...page, fetchSite: 'cross-site' }],
  ])('refuses %s', (_name, headers) => {
    expect(csrfRefusal(headers, own, ['https://app.example'])).toMatch(/\w/);
  });

  it('does not take `*` in ALLOWED_ORIGINS to mean any origin may use the cookie', () => {
    expect(csrfRefusal({ ...page, origin: 'https://evil.example' }, own, ['*'])).toMatch(/may not use the session/);
  });
});

describe('refreshCookie', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const expires = new Date('2026-01-31T00:00:00Z');

  it('is HttpOnly, SameSite=Strict, limited to /auth and lives as long as the refresh token', () => {
    expect(refreshCookie('tok', expires, false, now)).toBe(
      'vidmp3-refresh=tok; Path=/auth; Max-Age=2592000; HttpOnly; SameSite=Strict',
    );
  });

  it('is Secure with the __Secure- prefix when secure', () => {
    expect(refreshCookie('tok', expires, true, now)).toBe(
      '__Secure-vidmp3-refresh=tok; Path=/auth; Max-Age=2592000; HttpOnly; SameSite=Strict; Secure',
    );
  });

  it('clears the cookie when given no token', () => {
    expect(refreshCookie(undefined, undefined, false, now)).toBe(
      'vidmp3-refresh=; Path=/auth; Max-Age=0; HttpOnly; SameSite=Strict',
    );
  });
});

describe('cookieValue', () => {
  it('finds one cookie among others, and nothing for a prefix or a missing one', () => {
    const header = 'a=1; vidmp3-refresh=abc.def; __Secure-vidmp3-refresh=sec';
    expect(cookieValue(header, 'vidmp3-refresh')).toBe('abc.def');
    expect(cookieValue(header, '__Secure-vidmp3-refresh')).toBe('sec');
    expect(cookieValue(header, 'vidmp3')).toBeUndefined();
    expect(cookieValue('vidmp3-refresh=', 'vidmp3-refresh')).toBeUndefined();
    expect(cookieValue(undefined, 'vidmp3-refresh')).toBeUndefined();
  });
});
