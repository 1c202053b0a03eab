// The page's sign-in, kept by the gateway's /auth routes: the refresh token lives in an HttpOnly cookie that no
// script here can read; this page holds only the access token, in memory, and trades the cookie for a new one
// shortly before it expires and once at start (a reload). Nothing is written to localStorage.
import { Vidmp3Error } from '@vidmp3/sdk';

export interface PageSession {
  accessToken: string;
  /** When the access token expires (ISO 8601). */
  expiresAt: string;
  user: { id: string; email: string; createdAt: string };
}

/** Renewed this long before the access token expires (or at half its life, if that is sooner). */
const RENEW_AHEAD_MS = 60_000;
/** The gateway refuses /auth requests without it: a form or another site's page cannot add it (CSRF). */
const AUTH_HEADER = 'x-vidmp3-auth';
/** Where earlier versions of this page kept the access token; removed on sight. */
const LEGACY_KEY = 'vidmp3.session';

type Listener = (session: PageSession | undefined, reason?: Vidmp3Error) => void;

export class SessionKeeper {
  private session: PageSession | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private renewing: Promise<PageSession | undefined> | undefined;
  /** Tells this browser's other tabs of a sign-out, which they follow at once (their tokens are in memory). */
  private readonly tabs = typeof BroadcastChannel === 'function' ? new BroadcastChannel('vidmp3-session') : undefined;

  constructor(private readonly onChange: Listener) {
    this.tabs?.addEventListener('message', (event: MessageEvent) => {
      if (event.data === 'signed-out' && this.session) {
        this.use(undefined, new Vidmp3Error('UNAUTHENTICATED', 'Signed out in another tab'));
      }
    });
    try {
      localStorage.removeItem(LEGACY_KEY);
    } catch {
      // Storage disabled: nothing was kept there either.
    }
    // Timers of hidden tabs are throttled: catch up as soon as the page is looked at again.
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && this.session && this.dueAt() <= Date.now()) void this.renew();
    });
  }

  get current(): PageSession | undefined {
    return this.session;
  }

  signUp(email: string, password: string): Promise<PageSession> {
    return this.start('signup', { email, password });
  }

  logIn(email: string, password: string): Promise<PageSession> {
    return this.start('login', { email, password });
  }

  /** Changes the password; every other session ends and this page goes on with the new one. */
  async changePassword(currentPassword: string, newPassword: string): Promise<PageSession> {
    const session = (await post(
      'password',
      { currentPassword, newPassword },
      this.session?.accessToken,
    )) as PageSession;
    this.use(session);
    return session;
  }

  /** Sets a new password with a reset link's token; this page goes on signed in with the new session. */
  async resetPassword(token: string, newPassword: string): Promise<PageSession> {
    return this.start('reset', { token, newPassword });
  }

  /**
   * Trades the cookie for a new access token. Undefined when there is no session to renew: none in this browser,
   * or the server ended the one this page had (listeners hear of it, with the reason). UNAUTHENTICATED is thrown
   * when the page had none yet and the server refused the cookie (at start: the session ended meanwhile). Other
   * failures (the network) are thrown and the current token is kept: it may still work.
   */
  renew(): Promise<PageSession | undefined> {
    this.renewing ??= withRefreshLock(() => post('refresh', {}))
      .then((answer) => {
        // No content: this browser holds no session (never signed in, or signed out).
        const session = answer === undefined ? undefined : (answer as PageSession);
        if (session || this.session) this.use(session);
        return session;
      })
      .catch((error: unknown) => {
        if (error instanceof Vidmp3Error && error.code === 'UNAUTHENTICATED') {
          // The cookie is gone: the session is over for every tab of this browser.
          this.tabs?.postMessage('signed-out');
          if (this.session) {
            this.use(undefined, error);
            return undefined;
          }
        }
        throw error;
      })
      .finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  /** Ends this browser's session on the server and forgets it here, whatever the server says. */
  async logOut(): Promise<void> {
    const token = this.session?.accessToken;
    this.use(undefined);
    this.tabs?.postMessage('signed-out');
    await post('logout', {}, token).catch(() => undefined);
  }

  /** Forgets the session here and clears the cookie (after the server ended it: logOutEverywhere, endSession). */
  async forget(): Promise<void> {
    this.use(undefined);
    this.tabs?.postMessage('signed-out');
    await post('logout', {}).catch(() => undefined);
  }

  private async start(path: 'signup' | 'login' | 'reset', body: Record<string, string>): Promise<PageSession> {
    const session = (await post(path, body)) as PageSession;
    this.use(session);
    return session;
  }

  private use(session: PageSession | undefined, reason?: Vidmp3Error): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.session = session;
    if (session) {
      const wait = Math.max(0, this.dueAt() - Date.now());
      // setTimeout overflows past 2^31 ms; a token that long-lived is renewed by the visibility check instead.
      if (wait < 2 ** 31) {
        this.timer = setTimeout(() => {
          this.renew().catch(() => {
            // The network: try again a little later, while the token may still be good.
            this.timer = setTimeout(() => void this.renew().catch(() => undefined), 15_000);
          });
        }, wait);
      }
    }
    this.onChange(session, reason);
  }

  /** When the current token should be renewed. */
  private dueAt(): number {
    const expires = Date.parse(this.session?.expiresAt ?? '');
    if (!Number.isFinite(expires)) return Date.now();
    const life = expires - Date.now();
    return expires - Math.min(RENEW_AHEAD_MS, Math.max(0, life / 2));
  }
}

/**
 * Refreshes one at a time across this browser's tabs: a refresh token works once, and two tabs presenting the
 * same cookie at once would look like a stolen token being reused (ending the session). Within the lock each
 * refresh sends the cookie as the previous one left it. (Web Locks needs a secure context; without it the
 * gateway still merges simultaneous refreshes of one cookie.)
 */
function withRefreshLock<T>(task: () => Promise<T>): Promise<T> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  return locks ? (locks.request('vidmp3-refresh', task) as Promise<T>) : task();
}

/** One /auth request; the gateway's errors come back as the SDK's errors, so the page words them alike. */
async function post(path: string, body: Record<string, string>, token?: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`/auth/${path}`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: {
        'content-type': 'application/json',
        [AUTH_HEADER]: '1',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(body),
    });
  } catch {
    throw new Vidmp3Error('NETWORK_ERROR', 'The server could not be reached');
  }
  if (res.status === 204) return undefined;
  const answer = (await res.json().catch(() => ({}))) as {
    errors?: { message?: string; extensions?: { code?: string; field?: string } }[];
  };
  if (res.ok) return answer;
  const error = answer.errors?.[0];
  const requestId = res.headers.get('x-request-id') ?? undefined;
  throw new Vidmp3Error(error?.extensions?.code ?? 'INTERNAL', error?.message ?? `HTTP ${res.status}`, {
    ...(requestId ? { requestId } : {}),
    ...(error?.extensions ? { extensions: error.extensions } : {}),
  });
}
