import { hash, verify } from '@node-rs/argon2';
import { ErrorCode, userError } from '@vidmp3/shared';

// argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): memory-hard, ~20 ms per hash.
const params = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const MIN_PASSWORD_LENGTH = 10;
export const MAX_PASSWORD_LENGTH = 256;

// The most common passwords that would otherwise pass the length rule (NIST 800-63B: check against
// known-breached values rather than imposing composition rules).
const common = new Set([
  '1234567890',
  '12345678910',
  '123456789a',
  '0123456789',
  '1111111111',
  '0987654321',
  'qwertyuiop',
  'password12',
  'password123',
  'password1234',
  'passw0rd123',
  'iloveyou123',
  'qwerty1234',
  'qwerty12345',
  'qwerty123456',
  'abcdefghij',
  '1q2w3e4r5t',
  '1qaz2wsx3edc',
  'letmein123',
  'welcome123',
  'administrator',
  'football123',
  'monkey12345',
]);

/** Throws BAD_USER_INPUT with a message a person can act on, naming the argument (`field`) it is about. */
export function checkPasswordRules(password: string, email: string, field = 'password'): void {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH) {
    throw userError(ErrorCode.BAD_USER_INPUT, `Password must have at least ${MIN_PASSWORD_LENGTH} characters`, {
      field,
    });
  }
  if (length > MAX_PASSWORD_LENGTH) {
    throw userError(ErrorCode.BAD_USER_INPUT, `Password must have at most ${MAX_PASSWORD_LENGTH} characters`, {
      field,
    });
  }
  const lower = password.toLowerCase();
  if (common.has(lower) || new Set(lower).size < 3 || lower === email || lower === email.split('@')[0]) {
    throw userError(ErrorCode.BAD_USER_INPUT, 'Password is too easy to guess; choose a longer or less common one', {
      field,
    });
  }
}

export const hashPassword = (password: string): Promise<string> => hash(password, params);

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false; // a malformed stored hash never authenticates
  }
}
