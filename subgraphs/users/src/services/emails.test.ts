import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { normaliseEmail } from './emails.js';

/** The error a person sees for this address; fails the test when the address is accepted. */
function refusal(input: string): GraphQLError {
  try {
    normaliseEmail(input);
  } catch (err) {
    expect(err).toBeInstanceOf(GraphQLError);
    return err as GraphQLError;
  }
  throw new Error(`expected "${input}" to be refused`);
}

describe('normaliseEmail', () => {
  it('trims surrounding whitespace and lower-cases the address', () => {
    expect(normaliseEmail('  Alice@Example.COM ')).toBe('alice@example.com');
    expect(normaliseEmail('\tBOB@example.org\n')).toBe('bob@example.org');
  });

  it('gives every spelling of one mailbox the same form', () => {
    const spellings = ['alice@example.com', 'ALICE@EXAMPLE.COM', ' Alice@example.com', 'alice@EXAMPLE.com  '];

    expect(new Set(spellings.map(normaliseEmail))).toEqual(new Set(['alice@example.com']));
  });

  it('keeps plus-addressing and dots, which are part of the mailbox', () => {
    expect(normaliseEmail('Alice.Smith+Videos@Example.com')).toBe('alice.smith+videos@example.com');
  });

  it.each([
    ['an empty string', ''],
    ['only spaces', '   '],
    ['no @', 'alice.example.com'],
    ['two @', 'alice@@example.com'],
    ['no domain', 'alice@'],
    ['no local part', '@example.com'],
    ['no top-level domain', 'alice@example'],
    ['a space inside', 'alice smith@example.com'],
    ['two dots in a row', 'alice..smith@example.com'],
  ])('refuses an address with %s as BAD_USER_INPUT on the email field', (_, input) => {
    const error = refusal(input);

    expect(error.message).toBe('Email address is not valid');
    expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'email' });
  });

  it('refuses an address longer than 254 characters (RFC 5321 path limit)', () => {
    const domain = `${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(60)}.com`; // 186 characters
    const fits = `${'a'.repeat(254 - domain.length - 1)}@${domain}`;

    expect(normaliseEmail(fits)).toHaveLength(254);
    expect(refusal(`a${fits}`).extensions.code).toBe('BAD_USER_INPUT');
  });

  it('measures the length after trimming, so padding does not make a valid address too long', () => {
    const domain = `${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(60)}.com`;
    const fits = `${'a'.repeat(254 - domain.length - 1)}@${domain}`;

    expect(normaliseEmail(`   ${fits}   `)).toBe(fits);
  });
});
