import type { RequestHandler } from 'express';
import { REQUEST_ID_HEADER } from '@vidmp3/shared';

/**
 * What a browser on another origin may send: bearer tokens in `authorization` (never cookies: credentials stay
 * off), JSON or multipart bodies, and the headers that satisfy Apollo's CSRF prevention
 * (`apollo-require-preflight`, `x-apollo-operation-name`). Each of them makes the request "non-simple", so the
 * browser asks first (a preflight), which a forging page cannot make succeed.
 */
export const CORS_ALLOWED_HEADERS = [
  'authorization',
  'content-type',
  'apollo-require-preflight',
  'x-apollo-operation-name',
  REQUEST_ID_HEADER,
];
/** Browsers cache an allowed preflight this long (Chromium caps it at 2 hours). */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * CORS for `/graphql`: the configured origins (ALLOWED_ORIGINS, the same list that may open the subscription
 * WebSocket; `*` allows any) get the headers a browser needs to call the API; any other origin gets none, so
 * its page cannot read an answer. Credentials are never allowed: the API authenticates by bearer token only,
 * so a page of another origin only ever acts with a token it was given.
 */
export function cors(allowedOrigins: readonly string[]): RequestHandler {
  const any = allowedOrigins.includes('*');
  const allowed = new Set(allowedOrigins.map((o) => (o === '*' ? o : new URL(o).origin)));
  return (req, res, next) => {
    res.vary('Origin');
    const origin = req.header('origin');
    const preflight = req.method === 'OPTIONS' && req.header('access-control-request-method') !== undefined;
    if (origin === undefined || !(any || allowed.has(origin))) {
      // A preflight from anywhere else is refused outright; a plain request is served without CORS headers
      // (its page cannot read the answer; curl and servers, which send no Origin, are unaffected).
      if (preflight) {
        res.status(403).end();
        return;
      }
      next();
      return;
    }
    res.setHeader('access-control-allow-origin', any ? '*' : origin);
    if (!preflight) {
      res.setHeader('access-control-expose-headers', REQUEST_ID_HEADER);
      next();
      return;
    }
    res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    res.setHeader('access-control-allow-headers', CORS_ALLOWED_HEADERS.join(', '));
    res.setHeader('access-control-max-age', String(PREFLIGHT_MAX_AGE_SECONDS));
    res.status(204).end();
  };
}
