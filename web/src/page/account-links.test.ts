import { describe, expect, it } from 'vitest';
import { readAccountLink, withoutAccountLink } from './account-links.js';

const page = (query: string) => new URL(`https://vidmp3.example/${query}`);

describe('account links in the page URL', () => {
  it.each([
    ['?verify-email=abc', { action: 'verify-email', token: 'abc' }],
    ['?reset-password=abc', { action: 'reset-password', token: 'abc' }],
    ['?confirm-email=abc', { action: 'confirm-email', token: 'abc' }],
    ['?job=1', undefined],
    ['?verify-email=', undefined],
    ['', undefined],
  ])('%s', (query, expected) => {
    expect(readAccountLink(page(query))).toEqual(expected);
  });

  it('are taken out of the address, the rest of it kept', () => {
    expect(withoutAccountLink(page('?reset-password=abc'))).toBe('/');
    expect(withoutAccountLink(page('?job=1&verify-email=abc#top'))).toBe('/?job=1#top');
    expect(withoutAccountLink(new URL('https://example.com/vidmp3/?confirm-email=abc'))).toBe('/vidmp3/');
  });
});
