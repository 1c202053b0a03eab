import type { IncomingMessage, ServerResponse } from 'node:http';
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
  const apply = applyCors(allowedOrigins);
  return (req, res, next) => {
    if (apply(req, res) === 'continue') next();
  };
}

/**
 * The same on plain Node objects (the gateway's JSON lane, graphql-post.ts, skips Express): sets the headers and,
 * for a preflight, answers it. 'answered' means the response was sent; 'continue', that the request goes on.
 */
export function applyCors(
  allowedOrigins: readonly string[],
): (req: IncomingMessage, res: ServerResponse) => 'answered' | 'continue' {
  const any = allowedOrigins.includes('*');
  const allowed = new Set(allowedOrigins.map((o) => (o === '*' ? o : new URL(o).origin)));
  return (req, res) => {
    varyOnOrigin(res);
    const origin = req.headers.origin;
    const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
    if (origin === undefined || !(any || allowed.has(origin))) {
      // A preflight from anywhere else is refused outright; a plain request is served without CORS headers
      // (its page cannot read the answer; curl and servers, which send no Origin, are unaffected).
      if (!preflight) return 'continue';
      res.statusCode = 403;
      res.end();
      return 'answered';
    }
    res.setHeader('access-control-allow-origin', any ? '*' : origin);
    if (!preflight) {
      res.setHeader('access-control-expose-headers', REQUEST_ID_HEADER);
      return 'continue';
    }
    res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    res.setHeader('access-control-allow-headers', CORS_ALLOWED_HEADERS.join(', '));
    res.setHeader('access-control-max-age', String(PREFLIGHT_MAX_AGE_SECONDS));
    res.statusCode = 204;
    res.end();
    return 'answered';
  };
}

/** Adds `Origin` to the response's `Vary` header (as Express's `res.vary` does), keeping what is there. */
function varyOnOrigin(res: ServerResponse): void {
  const current = res.getHeader('vary');
  if (current === undefined) {
    res.setHeader('vary', 'Origin');
    return;
  }
  const text = Array.isArray(current) ? current.join(', ') : String(current);
  const fields = text.split(',').map((f) => f.trim().toLowerCase());
  if (!fields.includes('origin') && !fields.includes('*')) res.setHeader('vary', `${text}, Origin`);
}
