// The signed-in user, kept in localStorage so a reload stays signed in; dropped once the token has expired.
import type { AuthPayload } from '@vidmp3/sdk';

const KEY = 'vidmp3.session';

export interface Session {
  token: string;
  email: string;
  expiresAt: string;
}

export function loadSession(): Session | undefined {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? 'null') as Partial<Session> | null;
    if (typeof saved?.token !== 'string' || typeof saved.email !== 'string' || typeof saved.expiresAt !== 'string') {
      return undefined;
    }
    if (!(Date.parse(saved.expiresAt) > Date.now())) {
      clearSession();
      return undefined;
    }
    return { token: saved.token, email: saved.email, expiresAt: saved.expiresAt };
  } catch {
    return undefined;
  }
}

export function saveSession(auth: AuthPayload): Session {
  const session = { token: auth.accessToken, email: auth.user.email, expiresAt: auth.expiresAt };
  localStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

export function clearSession(): void {
  localStorage.removeItem(KEY);
}
