import { z } from 'zod';
import { ErrorCode, userError } from '@vidmp3/shared';

const Email = z.email().max(254);

/**
 * One account per mailbox: the address is trimmed, NFC-normalised and lower-cased before it is stored or
 * looked up (mail providers treat the local part case-insensitively in practice).
 */
export function normaliseEmail(input: string): string {
  const email = input.normalize('NFC').trim().toLowerCase();
  if (!Email.safeParse(email).success) {
    throw userError(ErrorCode.BAD_USER_INPUT, 'Email address is not valid', { field: 'email' });
  }
  return email;
}
