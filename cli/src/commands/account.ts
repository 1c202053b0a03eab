import type { Context } from '../context.js';
import { notLoggedIn } from '../errors.js';
import { readPassword } from '../password.js';
import type { AuthPayload } from '../sdk.js';

export interface PasswordFlags {
  passwordStdin?: boolean;
}

async function authenticate(
  ctx: Context,
  email: string,
  flags: PasswordFlags,
  how: 'signUp' | 'logIn',
): Promise<AuthPayload> {
  const password = await readPassword(
    { passwordStdin: flags.passwordStdin ?? false, env: ctx.io.env, stdin: ctx.io.stdin },
    { confirm: how === 'signUp' },
  );
  const url = await ctx.url();
  const client = await ctx.anonymousClient();
  const auth = how === 'signUp' ? await client.signUp(email, password) : await client.logIn(email, password);
  await ctx.keepSession(url, auth.user.email, auth);
  await ctx.saveConfig({ ...(await ctx.loadConfig()), url });
  return auth;
}

// The token is never printed, not even with --json: it lives in the config file only.
const publicView = (auth: AuthPayload, url: string) => ({ url, user: auth.user, expiresAt: auth.expiresAt });

export async function signup(ctx: Context, email: string, flags: PasswordFlags): Promise<void> {
  const auth = await authenticate(ctx, email, flags, 'signUp');
  const url = await ctx.url();
  ctx.print(publicView(auth, url), `Signed up and logged in to ${url} as ${auth.user.email}`);
}

export async function login(ctx: Context, email: string, flags: PasswordFlags): Promise<void> {
  const auth = await authenticate(ctx, email, flags, 'logIn');
  const url = await ctx.url();
  ctx.print(publicView(auth, url), `Logged in to ${url} as ${auth.user.email}`);
}

/**
 * Ends the session on the server (its refresh token and access tokens stop working), then forgets it here.
 * A server that cannot be reached or no longer knows the session still gets it forgotten locally, said so.
 */
export async function logout(ctx: Context): Promise<void> {
  const url = await ctx.url();
  const session = (await ctx.loadConfig()).sessions[url];
  let ended = false;
  if (session && !ctx.io.env.VIDMP3_TOKEN) {
    const client = await ctx.authedClient({ sessionOnly: true }).catch(() => undefined);
    ended =
      (await client?.logOut().then(
        () => true,
        (err: unknown) => {
          ctx.warn(
            `vidmp3: warning: the server did not end the session (${(err as Error).message}); forgetting it here`,
          );
          return false;
        },
      )) ?? false;
  }
  if (session) await ctx.keepSession(url, session.email, null);
  ctx.print(
    { url, loggedOut: Boolean(session), sessionEnded: ended },
    session ? `Logged out of ${url} (${session.email})` : `Not logged in to ${url}`,
  );
}

export async function whoami(ctx: Context): Promise<void> {
  const client = await ctx.authedClient();
  const url = await ctx.url();
  const me = await client.me();
  if (!me) {
    // The server no longer accepts the token (expired, or its keys changed).
    throw notLoggedIn(url);
  }
  ctx.print({ url, user: me }, `${me.email} on ${url}`);
}
