// The per-user config file: which server to talk to and the session for each server. It holds a bearer token
// and a refresh token, so it is written 0600 in a 0700 directory, atomically (a crash never leaves half a file).
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CliError, ExitCode } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:4000/graphql';

export interface Session {
  /** The access token. */
  token: string;
  email: string;
  /** ISO date: when the access token expires. */
  expiresAt?: string;
  /** Renews the access token (each use gives a new one: the SDK rotates it, the CLI saves it). */
  refreshToken?: string;
  /** ISO date; a session past it (or past `expiresAt` without a refresh token) is treated as logged out. */
  refreshTokenExpiresAt?: string;
}

export interface ConfigFile {
  /** The server used when neither `--url` nor `VIDMP3_URL` is given: the last one logged in to. */
  url?: string;
  /** Sessions by GraphQL endpoint URL, so logging in to a second server keeps the first session. */
  sessions: Record<string, Session>;
}

export interface ConfigLocation {
  path: string;
  /** True when the directory is the CLI's own (`…/vidmp3`), so its permissions may be tightened. */
  ownDirectory: boolean;
}

type Env = Record<string, string | undefined>;

/** `$VIDMP3_CONFIG`, else `$XDG_CONFIG_HOME/vidmp3/config.json`, else `~/.config/vidmp3/config.json`. */
export function configLocation(env: Env = process.env, home: () => string = homedir): ConfigLocation {
  if (env.VIDMP3_CONFIG) return { path: env.VIDMP3_CONFIG, ownDirectory: false };
  // The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
  const base = env.XDG_CONFIG_HOME?.startsWith('/') ? env.XDG_CONFIG_HOME : join(home(), '.config');
  return { path: join(base, 'vidmp3', 'config.json'), ownDirectory: true };
}

const empty = (): ConfigFile => ({ sessions: {} });

function isSession(value: unknown): value is Session {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.token === 'string' &&
    typeof v.email === 'string' &&
    ['expiresAt', 'refreshToken', 'refreshTokenExpiresAt'].every((k) => v[k] === undefined || typeof v[k] === 'string')
  );
}

/** Reads the config file; a missing file is an empty config, a damaged one an error that names the file. */
export async function readConfig(path: string, warn: (line: string) => void = () => undefined): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return empty();
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, ExitCode.UNEXPECTED);
  }
  const { mode } = await stat(path);
  if (mode & 0o077) {
    warn(`vidmp3: warning: ${path} holds a token and can be read by other users; run: chmod 600 ${path}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not valid JSON: fix it or delete it and log in again`, ExitCode.UNEXPECTED);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CliError(`${path} is not a vidmp3 config file: fix it or delete it`, ExitCode.UNEXPECTED);
  }
  const raw = parsed as { url?: unknown; sessions?: unknown };
  const config = empty();
  if (typeof raw.url === 'string') config.url = raw.url;
  if (typeof raw.sessions === 'object' && raw.sessions !== null) {
    for (const [url, session] of Object.entries(raw.sessions)) {
      if (isSession(session)) config.sessions[url] = session;
    }
  }
  return config;
}

/** Writes the config file atomically with mode 0600, creating its directory (0700) when needed. */
export async function writeConfig(location: ConfigLocation, config: ConfigFile): Promise<void> {
  const dir = dirname(location.path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Only our own directory is tightened: $VIDMP3_CONFIG may point into a directory the user shares on purpose.
  if (location.ownDirectory) await chmod(dir, 0o700);
  const temp = join(dir, `.${basename(location.path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    // 'wx': never follow or reuse a file someone else created under that name.
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.chmod(0o600); // the umask can only remove bits; this makes the mode exact
      await handle.writeFile(`${JSON.stringify(config, null, 2)}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, location.path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** The session for a server, unless it has expired (with a refresh token: unless that one has). */
export function activeSession(config: ConfigFile, url: string, now = new Date()): Session | undefined {
  const session = config.sessions[url];
  if (!session) return undefined;
  const until = session.refreshToken ? session.refreshTokenExpiresAt : session.expiresAt;
  if (until && Date.parse(until) <= now.getTime()) return undefined;
  return session;
}
