import { InternalApi, UserContact } from '@vidmp3/shared';

/** users' internal API, as the notifier uses it. Any failure to get an answer throws: the caller waits and asks again. */
export class UsersClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  /** The user's address and mail settings; null only when users says the user does not exist. */
  async contact(userId: string): Promise<UserContact | null> {
    const res = await fetch(new URL(InternalApi.userContact.path(userId), this.baseUrl), {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(5_000),
    });
    const body: unknown = await res.json().catch(() => null);
    // users' own "no such user", not a 404 from something else on the way (a proxy, a users without the route).
    if (res.status === 404 && (body as { error?: unknown } | null)?.error === 'NOT_FOUND') return null;
    if (!res.ok) throw new Error(`users answered ${res.status} to a contact lookup`);
    return UserContact.parse(body);
  }

  /** For `/readyz`: users answers. */
  async ping(): Promise<boolean> {
    try {
      const res = await fetch(new URL('/healthz', this.baseUrl), { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }
}
