import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import {
  checkPasswordRules,
  hashPassword,
  MAX_PASSWORD_LENGTH,
  MIN_PASSWORD_LENGTH,
  verifyPassword,
} from './passwords.js';

const EMAIL = 'alice.smith@example.com';

/** The message a person is shown for this password, or null when it is accepted. */
function complaintAbout(password: string, email = EMAIL): string | null {
  try {
    checkPasswordRules(password, email);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(GraphQLError);
    expect((err as GraphQLError).extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'password' });
    return (err as GraphQLError).message;
  }
}

describe('checkPasswordRules', () => {
  it('accepts an ordinary passphrase', () => {
    expect(complaintAbout('correct horse battery staple')).toBeNull();
  });

  it(`refuses fewer than ${MIN_PASSWORD_LENGTH} characters, saying how many are needed`, () => {
    expect(complaintAbout('Xk9#mQ2!z')).toBe(`Password must have at least ${MIN_PASSWORD_LENGTH} characters`);
    expect(complaintAbout('Xk9#mQ2!zP')).toBeNull();
  });

  it(`refuses more than ${MAX_PASSWORD_LENGTH} characters`, () => {
    const longest = 'abc'.repeat(MAX_PASSWORD_LENGTH).slice(0, MAX_PASSWORD_LENGTH);

    expect(complaintAbout(longest)).toBeNull();
    expect(complaintAbout(`${longest}d`)).toBe(`Password must have at most ${MAX_PASSWORD_LENGTH} characters`);
  });

  it('counts characters as a person does, not UTF-16 code units', () => {
    // Each of these emoji is one character but two UTF-16 code units.
    expect(complaintAbout('🎵🎸🥁🎵🎸🥁🎵🎸🥁')).toMatch(/at least/); // 9 characters, 18 code units
    expect(complaintAbout('🎵🎸🥁🎵🎸🥁🎵🎸🥁🎹')).toBeNull();
  });

  it.each(['1234567890', 'qwertyuiop', 'password123', 'Password123', 'LETMEIN123', 'administrator'])(
    'refuses the common password "%s" whatever its case',
    (password) => {
      expect(complaintAbout(password)).toMatch(/too easy to guess/);
    },
  );

  it('refuses a password of fewer than three different characters', () => {
    expect(complaintAbout('aaaaaaaaaaaa')).toMatch(/too easy to guess/);
    expect(complaintAbout('abababababab')).toMatch(/too easy to guess/);
    expect(complaintAbout('AbAbAbAbAbAb')).toMatch(/too easy to guess/);
    expect(complaintAbout('abcabcabcabc')).toBeNull();
  });

  it('refuses the email address or its local part as the password', () => {
    expect(complaintAbout(EMAIL)).toMatch(/too easy to guess/);
    expect(complaintAbout('alice.smith')).toMatch(/too easy to guess/);
    expect(complaintAbout('Alice.Smith')).toMatch(/too easy to guess/);
  });

  it('checks length before anything else, so the message says what to fix first', () => {
    expect(complaintAbout('aaa')).toMatch(/at least/);
  });
});

describe('hashPassword', () => {
  it('produces an argon2id hash with the OWASP minimum parameters, not the password', async () => {
    const hash = await hashPassword('correct horse battery staple');

    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    expect(hash).not.toContain('correct horse');
  });

  it('salts every hash, so the same password never hashes the same twice', async () => {
    const [first, second] = await Promise.all([hashPassword('same password 1'), hashPassword('same password 1')]);

    expect(first).not.toBe(second);
  });
});

describe('verifyPassword', () => {
  it('accepts the password the hash was made from', async () => {
    const hash = await hashPassword('correct horse battery staple');

    expect(await verifyPassword(hash, 'correct horse battery staple')).toBe(true);
  });

  it('refuses any other password, including a different case or extra space', async () => {
    const hash = await hashPassword('correct horse battery staple');

    expect(await verifyPassword(hash, 'Correct horse battery staple')).toBe(false);
    expect(await verifyPassword(hash, 'correct horse battery staple ')).toBe(false);
    expect(await verifyPassword(hash, '')).toBe(false);
  });

  it.each(['', 'not a hash', '$argon2id$v=19$m=19456,t=2,p=1$broken', 'correct horse battery staple'])(
    'never authenticates against the malformed stored hash "%s", and does not throw',
    async (stored) => {
      expect(await verifyPassword(stored, 'correct horse battery staple')).toBe(false);
    },
  );
});
