import {
  RateLimiterMemory,
  RateLimiterMySQL,
  RateLimiterRes,
  type IRateLimiterOptions,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import { ErrorCode, userError, type Pool } from '@vidmp3/shared';

export interface ThrottleLimits {
  maxFailuresPerEmail: number;
  maxAttemptsPerIp: number;
  windowSeconds: number;
}

/** Where the counters live: the users database (table `login_throttle`, created by the migrations). */
export interface ThrottleStore {
  pool: Pool;
  database: string;
}

/**
 * Slows down password guessing: every signUp/logIn counts against the client address, and every failed login
 * against the email it targeted; a successful login clears the email's count. With a store, the counters are
 * shared by every replica (so N replicas do not give an attacker N budgets); should the database fail, each
 * replica falls back to counting in memory rather than letting everyone through or locking everyone out.
 */
export class LoginThrottle {
  private readonly perIp: RateLimiterAbstract;
  private readonly perEmail: RateLimiterAbstract;

  constructor(
    private readonly limits: ThrottleLimits,
    store?: ThrottleStore,
  ) {
    const limiter = (keyPrefix: string, points: number): RateLimiterAbstract => {
      const options: IRateLimiterOptions = { keyPrefix, points, duration: limits.windowSeconds };
      if (!store) return new RateLimiterMemory(options);
      return new RateLimiterMySQL({
        ...options,
        // rate-limiter-flexible speaks the callback API: mysql2's promise pool wraps one.
        storeClient: store.pool.pool,
        storeType: 'pool',
        dbName: store.database,
        tableName: 'login_throttle',
        tableCreated: true,
        insuranceLimiter: new RateLimiterMemory(options),
      });
    };
    this.perIp = limiter('ip', limits.maxAttemptsPerIp);
    this.perEmail = limiter('email', limits.maxFailuresPerEmail);
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
