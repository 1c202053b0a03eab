import jwt from 'jsonwebtoken';
import { randomUUID } from 'node:crypto';
import { JWT_ALGORITHM, type ApiKeyScope } from '@vidmp3/shared';
import type { SigningKeys } from '../adapters/signing-keys.js';

export interface IssuedToken {
  accessToken: string;
  expiresAt: Date;
}

/** Signs access tokens. Only the users service has the private key; everyone else verifies via the JWKS. */
export class TokenIssuer {
  constructor(
    private readonly keys: SigningKeys,
    private readonly options: { issuer: string; audience: string; ttlSeconds: number; apiKeyTtlSeconds?: number },
  ) {}

  /**
   * An access token for a user in one of their sessions (`sid`): short-lived, because only this service checks
   * whether the session has ended since; the gateway and the other subgraphs trust it until its `exp`.
   */
  issue(userId: string, sessionId: string, at = new Date()): IssuedToken {
    const now = Math.floor(at.getTime() / 1000);
    const exp = now + this.options.ttlSeconds;
    const accessToken = jwt.sign({ iat: now, exp, sid: sessionId }, this.keys.privateKey, {
      algorithm: JWT_ALGORITHM,
      keyid: this.keys.kid,
      issuer: this.options.issuer,
      audience: this.options.audience,
      subject: userId,
      jwtid: randomUUID(),
    });
    return { accessToken, expiresAt: new Date(exp * 1000) };
  }

  /**
   * An access token for an API key (`akid`), carrying its scopes (`scope`) and no session. Shorter-lived than a
   * session's: it bounds how long a revoked key keeps working outside this service (docs/SECURITY.md).
   */
  issueForApiKey(userId: string, apiKeyId: string, scopes: readonly ApiKeyScope[], at = new Date()): IssuedToken {
    const now = Math.floor(at.getTime() / 1000);
    const exp = now + (this.options.apiKeyTtlSeconds ?? 300);
    const accessToken = jwt.sign({ iat: now, exp, akid: apiKeyId, scope: scopes.join(' ') }, this.keys.privateKey, {
      algorithm: JWT_ALGORITHM,
      keyid: this.keys.kid,
      issuer: this.options.issuer,
      audience: this.options.audience,
      subject: userId,
      jwtid: randomUUID(),
    });
    return { accessToken, expiresAt: new Date(exp * 1000) };
  }
}
