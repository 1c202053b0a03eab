import type { KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import jwksRsa from 'jwks-rsa';
import { ErrorCode, userError } from './errors.js';

/** Access tokens are ES256 only: the algorithm is pinned on verify, so `alg: none`/HS256 tricks fail. */
export const JWT_ALGORITHM = 'ES256' as const;

/** Who is calling: the subject of a verified access token. */
export interface Viewer {
  userId: string;
  /** The verified bearer token, forwarded as it is to the services behind. */
  token: string;
  expiresAt: Date;
}

/** Finds the public key for a `kid`; undefined when no such key is known. */
export type KeyResolver = (kid: string) => Promise<KeyObject | string | undefined>;

export interface VerifierOptions {
  keys: KeyResolver;
  issuer: string;
  audience: string;
  clockToleranceSeconds?: number;
}

export interface TokenVerifier {
  verify(token: string): Promise<Viewer>;
  /** Reads `Authorization: Bearer …`: no header → null (anonymous), anything wrong → UNAUTHENTICATED. */
  authenticate(authorization: string | undefined): Promise<Viewer | null>;
}

// A bad token fails the whole request, hence HTTP 401 rather than a 200 with an error inside.
const unauthenticated = (message: string) => userError(ErrorCode.UNAUTHENTICATED, message, { http: { status: 401 } });
const invalid = (why: string) => unauthenticated(`Invalid access token: ${why}`);

export function createTokenVerifier(options: VerifierOptions): TokenVerifier {
  const verify = async (token: string): Promise<Viewer> => {
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload === 'string') throw invalid('malformed');
    const kid = decoded.header.kid;
    if (!kid) throw invalid('no key id');
    if (decoded.header.alg !== JWT_ALGORITHM) throw invalid('unexpected algorithm');
    const key = await options.keys(kid);
    if (!key) throw invalid('unknown signing key');
    let claims: string | jwt.JwtPayload;
    try {
      claims = jwt.verify(token, key, {
        algorithms: [JWT_ALGORITHM],
        issuer: options.issuer,
        audience: options.audience,
        clockTolerance: options.clockToleranceSeconds ?? 5,
      });
    } catch (err) {
      if (err instanceof jwt.TokenExpiredError) throw unauthenticated('Access token expired');
      if (err instanceof jwt.JsonWebTokenError) throw invalid(err.message);
      // Anything else thrown while checking the signature (e.g. a wrong-length ES256 signature) is still the
      // token's fault: verification is local computation, there is no I/O here to fail.
      throw invalid('bad signature');
    }
    if (typeof claims === 'string' || !claims.sub || typeof claims.exp !== 'number') throw invalid('missing claims');
    return { userId: claims.sub, token, expiresAt: new Date(claims.exp * 1000) };
  };
  return {
    verify,
    async authenticate(authorization) {
      if (authorization === undefined || authorization === '') return null;
      // The scheme name is case-insensitive (RFC 9110 §11.1).
      const match = /^Bearer ([A-Za-z0-9_.~+/=-]+)$/i.exec(authorization.trim());
      if (!match?.[1]) throw invalid('expected "Authorization: Bearer <token>"');
      return verify(match[1]);
    },
  };
}

/** Public keys from the users service's JWKS endpoint, cached, refetched (rate-limited) for unknown kids. */
export function jwksKeyResolver(jwksUri: string): KeyResolver {
  const client = new jwksRsa.JwksClient({
    jwksUri,
    cache: true,
    cacheMaxAge: 10 * 60_000,
    rateLimit: true,
    jwksRequestsPerMinute: 10,
    timeout: 5_000,
  });
  return async (kid) => {
    try {
      return (await client.getSigningKey(kid)).getPublicKey();
    } catch (err) {
      // Unknown kid, or too many unknown kids lately (someone sending random ones): not a key we know.
      if (err instanceof jwksRsa.SigningKeyNotFoundError || err instanceof jwksRsa.JwksRateLimitError) {
        return undefined;
      }
      throw err; // the JWKS endpoint is unreachable: our fault, not the client's
    }
  };
}
