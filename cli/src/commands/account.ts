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
  const config = await ctx.loadConfig();
  await ctx.saveConfig({
    url,
    sessions: {
      ...config.sessions,
      [url]: { token: auth.accessToken, email: auth.user.email, expiresAt: auth.expiresAt },
    },
  });
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

export async function logout(ctx: Context): Promise<void> {
  const url = await ctx.url();
  const config = await ctx.loadConfig();
  const session = config.sessions[url];
  if (session) {
    const { [url]: _removed, ...sessions } = config.sessions;
    await ctx.saveConfig({ ...config, sessions });
  }
  ctx.print(
    { url, loggedOut: Boolean(session) },
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
