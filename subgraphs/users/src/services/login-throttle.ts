import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { ErrorCode, userError } from '@vidmp3/shared';

export interface ThrottleLimits {
  maxFailuresPerEmail: number;
  maxAttemptsPerIp: number;
  windowSeconds: number;
}

/**
 * Slows down password guessing: every signUp/logIn counts against the client address, and every failed login
 * against the email it targeted; a successful login clears the email's count. The counters live in this
 * process: with N replicas an attacker gets up to N times the budget (docs/ARCHITECTURE.md).
 */
export class LoginThrottle {
  private readonly perIp: RateLimiterMemory;
  private readonly perEmail: RateLimiterMemory;

  constructor(private readonly limits: ThrottleLimits) {
    this.perIp = new RateLimiterMemory({ points: limits.maxAttemptsPerIp, duration: limits.windowSeconds });
    this.perEmail = new RateLimiterMemory({ points: limits.maxFailuresPerEmail, duration: limits.windowSeconds });
  }

  /** Counts one attempt from this address; RATE_LIMITED once over the budget. */
  async attempt(ip: string): Promise<void> {
    try {
      await this.perIp.consume(ip);
    } catch (err) {
      throw limited(err);
    }
  }

  /** RATE_LIMITED while this email has used up its failed attempts. */
  async check(email: string): Promise<void> {
    const state = await this.perEmail.get(email);
    if (state && state.consumedPoints >= this.limits.maxFailuresPerEmail) throw limited(state);
  }

  async failed(email: string): Promise<void> {
    await this.perEmail.consume(email).catch(() => undefined); // already over: check() reports it next time
  }

  async succeeded(email: string): Promise<void> {
    await this.perEmail.delete(email);
  }
}

function limited(err: unknown): Error {
  if (!(err instanceof RateLimiterRes)) return err instanceof Error ? err : new Error(String(err));
  const retryAfterSeconds = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
  return userError(ErrorCode.RATE_LIMITED, `Too many attempts; try again in ${retryAfterSeconds} s`, {
    retryAfterSeconds,
  });
}
