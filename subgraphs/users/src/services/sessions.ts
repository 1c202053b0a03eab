import { randomUUID } from 'node:crypto';
import { ErrorCode, userError } from '@vidmp3/shared';
import type { ActiveSession, RevokeReason, SessionRepository } from '../adapters/session-repo.js';
import {
  hashRefreshToken,
  isRefreshTokenShaped,
  judgeRefresh,
  newRefreshToken,
  refreshTokenExpiry,
  type SessionPolicy,
} from './session-policy.js';
import type { TokenIssuer } from './tokens.js';

/** What a session hands its client: a short-lived access token and the refresh token that renews it. */
export interface SessionTokens {
  sessionId: string;
  accessToken: string;
  expiresAt: Date;
  refreshToken: string;
  refreshTokenExpiresAt: Date;
}

/** `User.sessions` lists this many at most (the gateway's cost limit counts an unpaged list as 100 items). */
const MAX_LISTED_SESSIONS = 100;

const refused = (message: string) => userError(ErrorCode.UNAUTHENTICATED, message);

/**
 * Sessions: started by a sign-in, renewed by rotating refresh tokens, ended by logging out, by a password
 * change or by a refresh token presented twice. The rules are in session-policy.ts; this is their I/O.
 * Callers check who is asking (accounts.ts); a refresh token is its own proof.
 */
export class SessionService {
  /** Sessions started since the last sweep of expired rows. */
  private started = 0;

  constructor(
    private readonly repo: SessionRepository,
    private readonly tokens: TokenIssuer,
    private readonly policy: SessionPolicy,
    private readonly now: () => Date = () => new Date(),
    /** Expired and long-ended rows are deleted every this many sign-ins. */
    private readonly sweepEvery = 100,
  ) {}

  /**
   * Starts a session for a user who has just proved `passwordHash`'s password; null if the password changed
   * in the meantime (then the proof no longer stands).
   */
  async start(userId: string, passwordHash: string, ip: string): Promise<SessionTokens | null> {
    const now = this.now();
    const session = { id: randomUUID(), userId, createdAt: now, ip };
    const refresh = newRefreshToken();
    const expiresAt = refreshTokenExpiry(now, now, this.policy);
    const created = await this.repo.create(session, { hash: refresh.hash, issuedAt: now, expiresAt }, passwordHash);
    if (!created) return null;
    this.started += 1;
    // Housekeeping: a failed sweep is retried by a later one and must not fail the sign-in.
    if (this.started % this.sweepEvery === 0) await this.repo.sweep(now).catch(() => undefined);
    return this.tokensFor(userId, session.id, refresh.token, expiresAt, now);
  }

  /**
   * Trades a refresh token for the next one of its chain and a new access token. Refused (UNAUTHENTICATED)
   * when unknown, expired or of an ended session; a token already traded ends its session (reuse detection,
   * committed before the refusal is answered).
   */
  async refresh(refreshToken: string, ip: string): Promise<{ userId: string; tokens: SessionTokens }> {
    if (!isRefreshTokenShaped(refreshToken)) throw refused('Refresh token is not valid; log in again');
    const presented = hashRefreshToken(refreshToken);
    const result = await this.repo.withPresentedToken(presented, async (found, tx) => {
      if (!found) return { outcome: 'refuse', reason: 'unknown' } as const;
      const now = this.now();
      const verdict = judgeRefresh(found, now, this.policy);
      switch (verdict.outcome) {
        case 'refuse':
          return verdict;
        case 'reuse':
          await tx.revoke(found.sessionId, now, 'refresh_reuse');
          return verdict;
        case 'rotate': {
          const next = newRefreshToken();
          await tx.rotate(
            found.sessionId,
            presented,
            { hash: next.hash, issuedAt: now, expiresAt: verdict.expiresAt },
            ip,
          );
          return { ...verdict, found, refreshToken: next.token, now };
        }
      }
    });
    switch (result.outcome) {
      case 'rotate': {
        const { found, refreshToken: token, expiresAt, now } = result;
        return { userId: found.userId, tokens: this.tokensFor(found.userId, found.sessionId, token, expiresAt, now) };
      }
      case 'reuse':
        throw refused('Refresh token was already used; the session has been ended everywhere, log in again');
      case 'refuse':
        throw refused(
          result.reason === 'expired'
            ? 'Refresh token expired; log in again'
            : 'Refresh token is not valid; log in again',
        );
    }
  }

  /** Ends one session of the user; false when it had ended already. */
  async end(userId: string, sessionId: string, reason: RevokeReason): Promise<boolean> {
    return this.repo.revoke(userId, sessionId, this.now(), reason);
  }

  /** The user's sessions still going (neither ended nor expired), most recently used first. */
  async listActive(userId: string): Promise<ActiveSession[]> {
    return this.repo.listActive(userId, this.now(), MAX_LISTED_SESSIONS);
  }

  /** Ends every session of the user. */
  async endAll(userId: string, reason: RevokeReason): Promise<number> {
    return this.repo.revokeAll(userId, this.now(), reason);
  }

  private tokensFor(
    userId: string,
    sessionId: string,
    refreshToken: string,
    refreshTokenExpiresAt: Date,
    now: Date,
  ): SessionTokens {
    return { sessionId, ...this.tokens.issue(userId, sessionId, now), refreshToken, refreshTokenExpiresAt };
  }
}
