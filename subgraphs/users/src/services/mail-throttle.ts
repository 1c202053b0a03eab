import { addressKey, ErrorCode, userError } from '@vidmp3/shared';
import type { CounterStore } from '../adapters/throttle-store.js';
import { takeFromWindow, type Counter, type Verdict, type WindowRule } from './throttle-policy.js';

/**
 * How many account mails may be asked for (docs/SECURITY.md, "Account mails"), on the sign-in throttle's
 * counters (same store, same window rule):
 * - `perAddress`: mails to one address or account per window — password resets per address asked about
 *   (counted whether or not it has an account, so the answer tells nothing), verification mails and address
 *   changes per account. Nobody can use the service to flood a mailbox.
 * - `resetsPerClient`: password resets asked for from one client address, whatever the email (someone probing
 *   or flooding many addresses). IPv6 counts per /64.
 */
export interface MailThrottlePolicy {
  perAddress: WindowRule;
  resetsPerClient: WindowRule;
}

export function mailThrottlePolicy(config: {
  ACCOUNT_MAILS_PER_ADDRESS_PER_HOUR: number;
  PASSWORD_RESETS_PER_IP_PER_HOUR: number;
}): MailThrottlePolicy {
  return {
    perAddress: { limit: config.ACCOUNT_MAILS_PER_ADDRESS_PER_HOUR, windowMs: 3_600_000 },
    resetsPerClient: { limit: config.PASSWORD_RESETS_PER_IP_PER_HOUR, windowMs: 3_600_000 },
  };
}

export class MailThrottle {
  constructor(
    private readonly store: CounterStore,
    private readonly policy: MailThrottlePolicy,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Counts one password reset asked for `email` (normalised) from `ip`; RATE_LIMITED over either budget. */
  async reservePasswordReset(ip: string, email: string): Promise<void> {
    await this.take([
      [`reset-ip:${addressKey(ip)}`, this.policy.resetsPerClient],
      [`mail-to:${email}`, this.policy.perAddress],
    ]);
  }

  /** Counts one mail asked for by a signed-in account (verification again, a change of address). */
  async reserveAccountMail(userId: string): Promise<void> {
    await this.take([[`mail-user:${userId}`, this.policy.perAddress]]);
  }

  /** Every rule must allow it; then every counter takes it, otherwise none does. */
  private async take(rules: Array<[string, WindowRule]>): Promise<void> {
    const keys = rules.map(([key]) => key);
    const refusal = await this.store.update(keys, this.now, (counters, now) => {
      const verdicts: Array<[string, Verdict]> = rules.map(([key, rule]) => [
        key,
        takeFromWindow(counters.get(key), now, rule),
      ]);
      const waits = verdicts.flatMap(([, v]) => (v.allowed ? [] : [v.retryAfterMs]));
      if (waits.length > 0) return [Math.max(...waits), new Map<string, Counter>()];
      return [0, new Map(verdicts.flatMap(([key, v]) => (v.allowed ? [[key, v.next] as const] : [])))];
    });
    if (refusal > 0) {
      const retryAfterSeconds = Math.max(1, Math.ceil(refusal / 1000));
      throw userError(ErrorCode.RATE_LIMITED, `Too many emails asked for; try again in ${retryAfterSeconds} s`, {
        retryAfterSeconds,
      });
    }
  }
}
