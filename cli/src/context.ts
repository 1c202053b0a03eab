// What every command needs: the server URL, the config file and session, an SDK client, and output that is
// either for people (text) or for scripts (--json: one JSON document on stdout).
import { activeSession, configLocation, DEFAULT_URL, readConfig, writeConfig, type ConfigFile } from './config.js';
import { notLoggedIn, usageError } from './errors.js';
import { createClient, type Client, type SdkSession } from './sdk.js';

export interface GlobalOptions {
  url?: string;
  apiKey?: string;
  json?: boolean;
  debug?: boolean;
}

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stdin: NodeJS.ReadableStream;
  env: Record<string, string | undefined>;
}

/** A GraphQL endpoint URL, with `/graphql` added to a bare origin (`http://host:4000`). */
export function normalizeUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usageError(`--url ${raw}: not a URL (expected something like ${DEFAULT_URL})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw usageError(`--url ${raw}: only http and https URLs are supported`);
  }
  if (url.pathname === '/') url.pathname = '/graphql';
  return url.href;
}

export class Context {
  readonly json: boolean;
  readonly debug: boolean;
  readonly location;
  private config: ConfigFile | undefined;
  private clients: Client[] = [];
  /** Config writes under way (a refreshed session): awaited before the command ends. */
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly globals: GlobalOptions,
    readonly io: Io,
  ) {
    this.json = globals.json ?? false;
    this.debug = globals.debug ?? false;
    this.location = configLocation(io.env);
  }

  warn = (line: string): void => {
    this.io.stderr.write(`${line}\n`);
  };

  async loadConfig(): Promise<ConfigFile> {
    return (this.config ??= await readConfig(this.location.path, this.warn));
  }

  async saveConfig(config: ConfigFile): Promise<void> {
    await writeConfig(this.location, config);
    this.config = config;
  }

  /** --url, else $VIDMP3_URL, else the server last logged in to, else the local default. */
  async url(): Promise<string> {
    const explicit = this.globals.url ?? this.io.env.VIDMP3_URL;
    if (explicit) return normalizeUrl(explicit);
    return (await this.loadConfig()).url ?? DEFAULT_URL;
  }

  /** A client without a session, for signing up and logging in. */
  async anonymousClient(): Promise<Client> {
    return this.track(createClient({ url: await this.url() }));
  }

  /** --api-key, else $VIDMP3_API_KEY: used instead of any saved session. */
  apiKey(): string | undefined {
    return this.globals.apiKey || this.io.env.VIDMP3_API_KEY || undefined;
  }

  /**
   * A client signed in: with an API key (`apiKey()`), else $VIDMP3_TOKEN as it is, else with the config file's
   * session, which the SDK refreshes when needed — every new session is saved back at once (a refresh token
   * works once). Exit 3 when there is none. `sessionOnly`: never the API key (logout ends the saved session).
   */
  async authedClient(options: { sessionOnly?: boolean } = {}): Promise<Client> {
    const url = await this.url();
    const apiKey = options.sessionOnly ? undefined : this.apiKey();
    if (apiKey) return this.track(createClient({ url, apiKey }));
    const token = this.io.env.VIDMP3_TOKEN;
    if (token) return this.track(createClient({ url, token }));
    const session = activeSession(await this.loadConfig(), url);
    if (!session) throw notLoggedIn(url);
    if (!session.refreshToken || !session.refreshTokenExpiresAt || !session.expiresAt) {
      return this.track(createClient({ url, token: session.token })); // a session saved before refresh tokens
    }
    const kept: SdkSession = {
      accessToken: session.token,
      expiresAt: session.expiresAt,
      refreshToken: session.refreshToken,
      refreshTokenExpiresAt: session.refreshTokenExpiresAt,
    };
    return this.track(
      createClient({
        url,
        session: kept,
        onSession: (next) => void this.keepSession(url, session.email, next).catch(() => undefined),
      }),
    );
  }

  /** Saves a server's session (null: removes it), after any save still under way. */
  keepSession(url: string, email: string, session: SdkSession | null): Promise<void> {
    this.saving = this.saving.then(async () => {
      const config = await this.loadConfig();
      const { [url]: _old, ...others } = config.sessions;
      const sessions = session
        ? {
            ...others,
            [url]: {
              token: session.accessToken,
              email,
              expiresAt: session.expiresAt,
              refreshToken: session.refreshToken,
              refreshTokenExpiresAt: session.refreshTokenExpiresAt,
            },
          }
        : others;
      await this.saveConfig({ ...config, sessions });
    });
    return this.saving;
  }

  /** Waits for the config writes under way (a failed one rejects here, for the command to report). */
  async flush(): Promise<void> {
    await this.saving;
  }

  private track(client: Client): Client {
    this.clients.push(client);
    return client;
  }

  close(): void {
    for (const client of this.clients) client.close();
  }

  /** The command's result: `json` with --json, else the human-readable lines. */
  print(json: unknown, text: string | string[]): void {
    if (this.json) {
      this.io.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    } else {
      const lines = Array.isArray(text) ? text : [text];
      if (lines.length) this.io.stdout.write(`${lines.join('\n')}\n`);
    }
  }
}
