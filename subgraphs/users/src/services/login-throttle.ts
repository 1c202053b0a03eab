import { addressKey, ErrorCode, userError } from '@vidmp3/shared';
import type { Config } from '../config.js';
import type { CounterStore, CounterWrites } from '../adapters/throttle-store.js';
import {
  forgiveOne,
  takeFromWindow,
  takeWithBackoff,
  type BackoffRule,
  type Counter,
  type Verdict,
  type WindowRule,
} from './throttle-policy.js';

/**
 * The sign-in policy (docs/SECURITY.md). Client addresses are counted by addressKey: IPv4 by address,
 * IPv6 by /64.
 * - `attemptsPerAddress`: logIn attempts from one address, whatever the email: stops one address from
 *   spraying passwords over many accounts (and from spending the service's CPU on argon2).
 * - `perAddressAndEmail`: failed logins for one email from one address get a few free tries, then a delay
 *   that doubles with each failure. It slows the guesser down and nobody else: the owner, logging in from
 *   their own address, is not affected by a stranger's failures.
 * - `perEmail`: failures for one email from all addresses together (a guesser with many addresses); a much
 *   higher free allowance, then a short, capped delay. It only slows, and it does not apply at all to an
 *   address that logged in to this account successfully within `knownAddressMs`.
 * - `signUpsPerAddress`: accounts created per address per window (sign-up abuse: bulk free accounts).
 * Every attempt is reserved (counted as a failure) before the password is checked, with the counters
 * locked, so concurrent guesses take their turns; a successful login takes its reservation back.
 */
export interface ThrottlePolicy {
  attemptsPerAddress: WindowRule;
  perAddressAndEmail: BackoffRule;
  perEmail: BackoffRule;
  knownAddressMs: number;
  signUpsPerAddress: WindowRule;
}

/** The policy the configuration asks for. */
export function throttlePolicy(config: ThrottleSettings): ThrottlePolicy {
  const windowMs = config.LOGIN_THROTTLE_WINDOW_SECONDS * 1000;
  return {
    attemptsPerAddress: { limit: config.AUTH_MAX_ATTEMPTS_PER_IP, windowMs },
    perAddressAndEmail: {
      freeFailures: config.LOGIN_FREE_FAILURES,
      baseDelayMs: config.LOGIN_BACKOFF_BASE_SECONDS * 1000,
      maxDelayMs: config.LOGIN_BACKOFF_MAX_SECONDS * 1000,
      windowMs,
    },
    perEmail: {
      freeFailures: config.LOGIN_EMAIL_FREE_FAILURES,
      // Starts at a second and stays short: this one can hit the owner too (from a new address).
      baseDelayMs: 1000,
      maxDelayMs: config.LOGIN_EMAIL_BACKOFF_MAX_SECONDS * 1000,
      windowMs,
    },
    knownAddressMs: config.LOGIN_KNOWN_ADDRESS_DAYS * 86_400_000,
    signUpsPerAddress: { limit: config.SIGNUP_MAX_PER_IP_PER_HOUR, windowMs: 3_600_000 },
  };
}

/** A reserved login attempt: report a success to take the reservation back; a failure needs nothing. */
export interface LoginAttempt {
  succeeded(): Promise<void>;
}

type ThrottleSettings = Pick<
  Config,
  | 'AUTH_MAX_ATTEMPTS_PER_IP'
  | 'LOGIN_FREE_FAILURES'
  | 'LOGIN_BACKOFF_BASE_SECONDS'
  | 'LOGIN_BACKOFF_MAX_SECONDS'
  | 'LOGIN_EMAIL_FREE_FAILURES'
  | 'LOGIN_EMAIL_BACKOFF_MAX_SECONDS'
  | 'LOGIN_THROTTLE_WINDOW_SECONDS'
  | 'LOGIN_KNOWN_ADDRESS_DAYS'
  | 'SIGNUP_MAX_PER_IP_PER_HOUR'
>;

type Refused = { allowed: false; retryAfterMs: number };

export class LoginThrottle {
  constructor(
    private readonly store: CounterStore,
    private readonly policy: ThrottlePolicy,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Reserves one logIn attempt for (client address, normalised email); RATE_LIMITED when it must wait. */
  async reserveLogIn(ip: string, email: string): Promise<LoginAttempt> {
    const address = addressKey(ip);
    const keys = {
      address: `ip:${address}`,
      pair: `ip-email:${address}|${email}`,
      email: `email:${email}`,
      known: `known:${address}|${email}`,
    };
    const outcome = await this.store.update(Object.values(keys), this.now, (counters, now) => {
      const known = (counters.get(keys.known)?.expiresAt ?? 0) > now;
      const verdicts: Array<[string, Verdict]> = [
        [keys.address, takeFromWindow(counters.get(keys.address), now, this.policy.attemptsPerAddress)],
        [keys.pair, takeWithBackoff(counters.get(keys.pair), now, this.policy.perAddressAndEmail)],
      ];
      if (!known) verdicts.push([keys.email, takeWithBackoff(counters.get(keys.email), now, this.policy.perEmail)]);
      return decideAll(verdicts, known);
    });
    if ('retryAfterMs' in outcome) throw rateLimited('Too many attempts', outcome.retryAfterMs);
    return {
      succeeded: async () => {
        await this.store.update(Object.values(keys), this.now, (counters, at) => {
          const writes: CounterWrites = new Map();
          // Whoever knows the password from this address needs no delay here...
          writes.set(keys.pair, null);
          // ...but a success does not wipe what strangers did to this email elsewhere: only its own
          // reservation is taken back.
          if (!outcome.known) writes.set(keys.email, forgiveOne(counters.get(keys.email), at, this.policy.perEmail));
          writes.set(keys.known, { count: 1, blockedUntil: 0, expiresAt: at + this.policy.knownAddressMs });
          return [undefined, writes];
        });
      },
    };
  }

  /** Counts one account creation from this client address; RATE_LIMITED over the budget. */
  async reserveSignUp(ip: string): Promise<void> {
    const key = `sign-up:${addressKey(ip)}`;
    const outcome = await this.store.update([key], this.now, (counters, now) =>
      decideAll([[key, takeFromWindow(counters.get(key), now, this.policy.signUpsPerAddress)]], false),
    );
    if ('retryAfterMs' in outcome) throw rateLimited('Too many sign-ups from this address', outcome.retryAfterMs);
  }
}

/** All rules must allow the attempt; then every counter takes it, otherwise none does. */
function decideAll(verdicts: Array<[string, Verdict]>, known: boolean): [Refused | { known: boolean }, CounterWrites] {
  const refusals = verdicts.flatMap(([, verdict]) => (verdict.allowed ? [] : [verdict.retryAfterMs]));
  if (refusals.length > 0)
    return [{ allowed: false, retryAfterMs: Math.max(...refusals) }, new Map<string, Counter | null>()];
  const writes = new Map<string, Counter | null>();
  for (const [key, verdict] of verdicts) if (verdict.allowed) writes.set(key, verdict.next);
  return [{ known }, writes];
}

function rateLimited(what: string, retryAfterMs: number) {
  const retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return userError(ErrorCode.RATE_LIMITED, `${what}; try again in ${retryAfterSeconds} s`, { retryAfterSeconds });
}
