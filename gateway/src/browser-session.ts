// The page's session doors (`/auth/*`): sign up, log in, refresh, change the password and log out on behalf of
// the conversion page, keeping the refresh token in an HttpOnly cookie that page scripts cannot read (so an XSS
// on the page can steal at most an access token of minutes, never the session). The page keeps its access token
// in memory and comes here for a new one before it expires and after a reload. Scripts, the SDK and the CLI use
// the GraphQL mutations directly and hold their refresh token themselves.
import express, { type Request, type Response, type Router } from 'express';
import type { Fetcher } from '@apollo/utils.fetcher';
import { ErrorCode, REQUEST_ID_HEADER, type Logger } from '@vidmp3/shared';

/**
 * Every /auth request must carry this header (any value). A form or a navigation cannot add a header, and a
 * script of another origin that adds one needs a CORS preflight, which these routes never allow: together with
 * the Origin check it keeps other sites from acting with the cookie (CSRF). The page sends `1`.
 */
export const AUTH_HEADER = 'x-vidmp3-auth';

/** Over https the cookie is `Secure` and takes the `__Secure-` prefix (browsers then refuse it from http). */
export const REFRESH_COOKIE = 'vidmp3-refresh';
export const SECURE_REFRESH_COOKIE = `__Secure-${REFRESH_COOKIE}`;
/**
 * Sent with /auth requests only: never with /graphql, the page or downloads. (The stricter `__Host-` prefix
 * would need `Path=/`, so it is traded for this.)
 */
export const COOKIE_PATH = '/auth';

const MAX_BODY_BYTES = 4 * 1024;

export interface BrowserSessionOptions {
  /** The users subgraph's GraphQL endpoint. */
  usersUrl: string;
  /** The gateway's subgraph client (mutations are never resent by it). */
  fetcher: Fetcher;
  /** Origins besides the gateway's own whose pages may use these routes (`*` does not count here). */
  allowedOrigins: readonly string[];
  /** Production: the cookie is always `Secure`; elsewhere only when the request came over https. */
  production: boolean;
  logger: Logger;
}

/** What the page is given: the access token and who is signed in, never the refresh token. */
export interface PageSession {
  accessToken: string;
  expiresAt: string;
  user: { id: string; email: string; createdAt: string };
}

interface AuthPayload extends PageSession {
  refreshToken: string;
  refreshTokenExpiresAt: string;
}

interface UpstreamError {
  message: string;
  extensions?: Record<string, unknown>;
}

/** A GraphQL error of the users service (or ours), answered to the page with its code and an HTTP status. */
class AuthError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const PAYLOAD = 'accessToken expiresAt refreshToken refreshTokenExpiresAt user { id email createdAt }';
const SIGN_UP = `mutation PageSignUp($email: String!, $password: String!) {
  signUp(email: $email, password: $password) { ${PAYLOAD} } }`;
const LOG_IN = `mutation PageLogIn($email: String!, $password: String!) {
  logIn(email: $email, password: $password) { ${PAYLOAD} } }`;
const REFRESH = `mutation PageRefresh($refreshToken: String!) { refreshSession(refreshToken: $refreshToken) { ${PAYLOAD} } }`;
const CHANGE_PASSWORD = `mutation PageChangePassword($currentPassword: String!, $newPassword: String!) {
  changePassword(currentPassword: $currentPassword, newPassword: $newPassword) { ${PAYLOAD} } }`;
const RESET_PASSWORD = `mutation PageResetPassword($token: String!, $newPassword: String!) {
  resetPassword(token: $token, newPassword: $newPassword) { ${PAYLOAD} } }`;
const LOG_OUT = 'mutation PageLogOut { logOut }';

/** Not in the shared list of API codes: only these routes refuse this way (a CSRF refusal). */
const FORBIDDEN = 'FORBIDDEN';

const STATUS: Record<string, number> = {
  [ErrorCode.BAD_USER_INPUT]: 400,
  [ErrorCode.UNAUTHENTICATED]: 401,
  [FORBIDDEN]: 403,
  [ErrorCode.CONFLICT]: 409,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.SERVICE_UNAVAILABLE]: 503,
  INTERNAL: 500,
};

/**
 * Whether a request may use the session cookie: it names an Origin that is this gateway's own (as the browser
 * reached it: `ownOrigins`) or a configured one, carries AUTH_HEADER, and is not marked cross-site by the
 * browser. Returns the reason for a refusal, or undefined.
 */
export function csrfRefusal(
  headers: { origin?: string | undefined; custom?: string | undefined; fetchSite?: string | undefined },
  ownOrigins: readonly string[],
  allowedOrigins: readonly string[],
): string | undefined {
  if (headers.custom === undefined) return `The request lacks the ${AUTH_HEADER} header`;
  if (headers.fetchSite === 'cross-site') return 'Cross-site requests cannot use the session';
  const origin = headers.origin;
  if (origin === undefined || origin === 'null') return 'The request has no Origin';
  const allowed = ownOrigins.includes(origin) || allowedOrigins.some((o) => o !== '*' && new URL(o).origin === origin);
  return allowed ? undefined : `The origin ${origin} may not use the session`;
}

/** The Set-Cookie value that stores a refresh token until it expires (or clears it: `token` undefined). */
export function refreshCookie(
  token: string | undefined,
  expiresAt: Date | undefined,
  secure: boolean,
  now = new Date(),
) {
  const name = secure ? SECURE_REFRESH_COOKIE : REFRESH_COOKIE;
  const maxAge = token && expiresAt ? Math.max(0, Math.floor((expiresAt.getTime() - now.getTime()) / 1000)) : 0;
  return [
    `${name}=${token ?? ''}`,
    `Path=${COOKIE_PATH}`,
    `Max-Age=${maxAge}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

/** The value of one cookie of a Cookie header, undefined when absent. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

export function browserSessionRoutes(options: BrowserSessionOptions): Router {
  const { usersUrl, fetcher, allowedOrigins, production, logger } = options;
  /** Refreshes under way by refresh token: two at once from one browser (two tabs) share one rotation. */
  const refreshing = new Map<string, Promise<AuthPayload>>();

  const secure = (req: Request) => production || req.secure;

  /** One users mutation on behalf of this request's client (its address and request id go along). */
  async function users<T>(
    req: Request,
    res: Response,
    query: string,
    variables: Record<string, unknown>,
    token?: string,
  ): Promise<T> {
    let answer: { data?: Record<string, unknown> | null; errors?: UpstreamError[] };
    try {
      const response = await fetcher(usersUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          [REQUEST_ID_HEADER]: String(res.locals.requestId ?? ''),
          'x-forwarded-for': req.ip ?? 'unknown',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
      });
      answer = (await response.json()) as typeof answer;
    } catch (err) {
      res.locals.log?.warn({ err }, 'the users service could not be reached for a page session request');
      throw new AuthError(ErrorCode.SERVICE_UNAVAILABLE, 'Signing in is unavailable right now; try again shortly');
    }
    const error = answer.errors?.[0];
    if (error) {
      const { code, stacktrace: _stacktrace, ...extensions } = error.extensions ?? {};
      throw new AuthError(typeof code === 'string' ? code : 'INTERNAL', error.message, extensions);
    }
    const value = Object.values(answer.data ?? {})[0];
    if (value === undefined || value === null) throw new Error('the users service answered without data');
    return value as T;
  }

  /** Stores the refresh token in the cookie and answers the rest. */
  function signedIn(req: Request, res: Response, payload: AuthPayload): void {
    const { refreshToken, refreshTokenExpiresAt, accessToken, expiresAt, user } = payload;
    res.append('Set-Cookie', refreshCookie(refreshToken, new Date(refreshTokenExpiresAt), secure(req)));
    const session: PageSession = { accessToken, expiresAt, user };
    res.json(session);
  }

  const clearCookie = (req: Request, res: Response) =>
    res.append('Set-Cookie', refreshCookie(undefined, undefined, secure(req)));

  const cookieOf = (req: Request) =>
    cookieValue(req.header('cookie'), secure(req) ? SECURE_REFRESH_COOKIE : REFRESH_COOKIE);

  const bearer = (req: Request) => /^Bearer (\S+)$/i.exec(req.header('authorization') ?? '')?.[1];

  function refresh(req: Request, res: Response, refreshToken: string): Promise<AuthPayload> {
    let running = refreshing.get(refreshToken);
    if (!running) {
      running = users<AuthPayload>(req, res, REFRESH, { refreshToken }).finally(() => refreshing.delete(refreshToken));
      refreshing.set(refreshToken, running);
    }
    return running;
  }

  const router = express.Router();
  router.use((req, res, next) => {
    res.set('Cache-Control', 'no-store');
    if (req.method !== 'POST') {
      res.set('Allow', 'POST');
      return fail(res, new AuthError('METHOD_NOT_ALLOWED', 'Use POST'), 405);
    }
    const refusal = csrfRefusal(
      { origin: req.header('origin'), custom: req.header(AUTH_HEADER), fetchSite: req.header('sec-fetch-site') },
      // The scheme as the gateway sees it, and https: a TLS proxy in front that TRUST_PROXY does not name leaves
      // the request looking like http, while the page's Origin says https (the same host either way).
      [`${req.protocol}://${req.get('host') ?? ''}`, `https://${req.get('host') ?? ''}`],
      allowedOrigins,
    );
    if (refusal) return fail(res, new AuthError(FORBIDDEN, refusal));
    next();
  });
  router.use(express.json({ limit: MAX_BODY_BYTES }));

  const handle =
    (action: (req: Request, res: Response) => Promise<void>) =>
    (req: Request, res: Response): void => {
      action(req, res).catch((err: unknown) => {
        if (err instanceof AuthError) return fail(res, err);
        (res.locals.log ?? logger).error({ err }, 'page session request failed');
        fail(res, new AuthError('INTERNAL', 'Something went wrong; try again'), 500);
      });
    };

  const credentials = (req: Request) => {
    const { email, password } = (req.body ?? {}) as Record<string, unknown>;
    if (typeof email !== 'string' || typeof password !== 'string') {
      throw new AuthError(ErrorCode.BAD_USER_INPUT, 'Send an email and a password');
    }
    return { email, password };
  };

  router.post(
    '/signup',
    handle(async (req, res) => signedIn(req, res, await users<AuthPayload>(req, res, SIGN_UP, credentials(req)))),
  );
  router.post(
    '/login',
    handle(async (req, res) => signedIn(req, res, await users<AuthPayload>(req, res, LOG_IN, credentials(req)))),
  );

  router.post(
    '/refresh',
    handle(async (req, res) => {
      const token = cookieOf(req);
      // Not signed in in this browser: an answer, not an error (the page asks at every start).
      if (!token) return void res.status(204).end();
      try {
        signedIn(req, res, await refresh(req, res, token));
      } catch (err) {
        // Spent, expired or of an ended session (a reused one has just ended its whole family): forget it.
        if (err instanceof AuthError && err.code === ErrorCode.UNAUTHENTICATED) clearCookie(req, res);
        throw err;
      }
    }),
  );

  router.post(
    '/password',
    handle(async (req, res) => {
      const { currentPassword, newPassword } = (req.body ?? {}) as Record<string, unknown>;
      if (typeof currentPassword !== 'string' || typeof newPassword !== 'string') {
        throw new AuthError(ErrorCode.BAD_USER_INPUT, 'Send the current and the new password');
      }
      const token = bearer(req);
      if (!token) throw new AuthError(ErrorCode.UNAUTHENTICATED, 'Log in first');
      // Every session of the user ends; the one returned replaces this browser's.
      const payload = await users<AuthPayload>(req, res, CHANGE_PASSWORD, { currentPassword, newPassword }, token);
      signedIn(req, res, payload);
    }),
  );

  // A reset link's form (the page's account-links.ts): the new session is this browser's, in the cookie.
  router.post(
    '/reset',
    handle(async (req, res) => {
      const { token, newPassword } = (req.body ?? {}) as Record<string, unknown>;
      if (typeof token !== 'string' || typeof newPassword !== 'string') {
        throw new AuthError(ErrorCode.BAD_USER_INPUT, "Send the link's token and the new password");
      }
      signedIn(req, res, await users<AuthPayload>(req, res, RESET_PASSWORD, { token, newPassword }));
    }),
  );

  router.post(
    '/logout',
    handle(async (req, res) => {
      // The cookie is this browser's session, whatever access token the page holds: its refresh token is traded
      // for an access token of that very session, which then ends it. Without a cookie, the page's token's.
      const cookie = cookieOf(req);
      clearCookie(req, res);
      let token = bearer(req);
      if (cookie) {
        try {
          token = (await refresh(req, res, cookie)).accessToken;
        } catch (err) {
          // Already over (spent, expired, ended): nothing left to end with it.
          if (!(err instanceof AuthError && err.code === ErrorCode.UNAUTHENTICATED)) throw err;
          token = undefined;
        }
      }
      if (token) {
        try {
          await users<boolean>(req, res, LOG_OUT, {}, token);
        } catch (err) {
          if (!(err instanceof AuthError && err.code === ErrorCode.UNAUTHENTICATED)) throw err;
        }
      }
      res.json({ loggedOut: true });
    }),
  );

  router.use((_req, res) => fail(res, new AuthError(ErrorCode.NOT_FOUND, 'No such route'), 404));
  // A body that is not JSON or is too large.
  router.use((err: unknown, _req: Request, res: Response, next: (err?: unknown) => void) => {
    const status = (err as { status?: unknown }).status;
    if (typeof status !== 'number' || status < 400 || status >= 500 || res.headersSent) return next(err);
    fail(res, new AuthError(ErrorCode.BAD_USER_INPUT, 'The request body is not a small JSON object'), status);
  });
  return router;
}

function fail(res: Response, err: AuthError, status = STATUS[err.code] ?? 502): void {
  res.status(status).json({ errors: [{ message: err.message, extensions: { ...err.extensions, code: err.code } }] });
}
