// The client, the same in Node and browsers; what differs (uploads, files, WebSocket) comes from a Platform.
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws/client';
import { aborted, isAbort, Vidmp3Error } from './errors.js';
import {
  ApiKeysDocument,
  CancelJobDocument,
  CreateApiKeyDocument,
  ChangePasswordDocument,
  ConfirmEmailChangeDocument,
  ConvertMediaDocument,
  CreateWebhookDocument,
  DeleteWebhookDocument,
  EnableWebhookDocument,
  EndSessionDocument,
  JobDocument,
  JobsDocument,
  MediaDocument,
  LogInDocument,
  LogOutDocument,
  LogOutEverywhereDocument,
  DeleteAccountDocument,
  MeDocument,
  NotificationSettingsDocument,
  RefreshSessionDocument,
  RequestEmailChangeDocument,
  RequestPasswordResetDocument,
  ResendVerificationEmailDocument,
  ResetPasswordDocument,
  RetryJobDocument,
  RevokeApiKeyDocument,
  SessionsDocument,
  SignUpDocument,
  type TypedDocumentString,
  UploadVideoDocument,
  type UploadVideoMutation,
  UpdateNotificationSettingsDocument,
  UsageDocument,
  SendTestWebhookDocument,
  WebhookDeliveriesDocument,
  WebhooksDocument,
  VerifyEmailDocument,
} from './generated/graphql.js';
import { downloadBlob, fetchAnswer, graphqlData } from './http.js';
import type { Platform } from './platform.js';
import type {
  ApiKey,
  ApiKeyScope,
  AccountSession,
  AuthPayload,
  Client,
  ClientOptions,
  ConversionOptions,
  ConvertFileOptions,
  ConvertFileResult,
  CreatedApiKey,
  DownloadedFile,
  DownloadOptions,
  Job,
  JobPage,
  JobsFilter,
  Media,
  NotificationSettings,
  Session,
  UploadInput,
  UploadOptions,
  Usage,
  User,
  WatchOptions,
  CreatedWebhook,
  Webhook,
  WebhookDelivery,
  WebhookDeliveryPage,
  WebhookEvent,
} from './types.js';
import { isFinalStatus, shouldReconnect, watchJob } from './watch.js';

/** The graphql-ws endpoint of a GraphQL URL: http(s) turned into ws(s). */
export function webSocketUrl(httpUrl: string): string {
  const url = new URL(httpUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

// Reconnect quickly at first, then every few seconds: a restarting gateway is usually back within seconds.
const retryWait = (retries: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, Math.min(250 * 2 ** retries, 5_000) + Math.random() * 250));

/**
 * Closes a graphql-ws client. Its dispose() waits for the connection in progress and then closes it, so when that
 * socket closes before connection_ack (the server drops or refuses it, or it never opens) dispose() rejects with
 * the close event or error. The socket is gone, which is all closing wanted: the rejection must not go unhandled
 * (Node's default is to crash on an unhandled rejection). Watches on the client learn of the close through their
 * own subscriptions.
 */
function disposeQuietly(client: WsClient): void {
  // (Typed `void | Promise<void>`, as a Disposable; graphql-ws's own always returns a promise.)
  Promise.resolve(client.dispose()).catch(() => undefined);
}

/** Refreshed this long before the access token's expiry, so no request goes out with a token about to lapse. */
const REFRESH_AHEAD_MS = 30_000;

const sessionOf = ({ accessToken, expiresAt, refreshToken, refreshTokenExpiresAt }: Session): Session => ({
  accessToken,
  expiresAt,
  refreshToken,
  refreshTokenExpiresAt,
});

/** A graphql-ws client bound to one token; retired on token change once its last watcher is done. */
interface Socket {
  client: WsClient;
  users: number;
  retired: boolean;
}

class Vidmp3Client implements Client {
  private currentToken: string | undefined;
  private currentSession: Session | undefined;
  /** The refresh under way: one at a time, as a refresh token works once (a second use ends the session). */
  private refreshing: Promise<Session> | undefined;
  private socket: Socket | undefined;
  private readonly url: string;
  private readonly wsUrl: string;

  constructor(
    private readonly platform: Platform,
    private readonly options: ClientOptions,
  ) {
    if (!URL.canParse(options.url)) throw new Vidmp3Error('BAD_USER_INPUT', `Not a URL: ${options.url}`);
    this.url = options.url;
    this.wsUrl = options.wsUrl ?? webSocketUrl(options.url);
    this.currentToken = options.token || undefined;
    if (options.apiKey) this.currentToken = options.apiKey;
    else if (options.session) this.useSession(options.session, false);
  }

  get token(): string | undefined {
    return this.currentToken;
  }

  get session(): Session | undefined {
    return this.currentSession;
  }

  setToken(token: string | undefined): void {
    this.currentSession = undefined;
    this.useToken(token);
  }

  /** Signs this client in with `session` (null: out), and tells `onSession` if it is news. */
  private useSession(session: Session | null, announce = true): void {
    this.currentSession = session ? sessionOf(session) : undefined;
    this.useToken(session?.accessToken);
    if (announce) this.options.onSession?.(this.currentSession ?? null);
  }

  private useToken(token: string | undefined): void {
    if (token === this.currentToken) return;
    this.currentToken = token || undefined;
    // An open socket was authenticated with the old token: new watches need a new one.
    this.retireSocket();
  }

  /** New watches open a new socket; the current one closes once its last watcher is done. */
  private retireSocket(): void {
    const socket = this.socket;
    if (socket) {
      this.socket = undefined;
      socket.retired = true;
      if (socket.users === 0) disposeQuietly(socket.client);
    }
  }

  private headers(): Record<string, string> {
    return {
      ...this.options.headers,
      ...(this.currentToken ? { authorization: `Bearer ${this.currentToken}` } : {}),
    };
  }

  /**
   * A GraphQL request with the session kept alive: refreshed first when the access token is about to expire,
   * and once more, then the request sent again, when the server refuses it as unauthenticated (the token expired
   * on the way, or the clock here is off). A refused request had no effect, so sending it again is safe.
   */
  private async request<TResult, TVariables>(
    document: TypedDocumentString<TResult, TVariables>,
    variables: TVariables,
  ): Promise<TResult> {
    await this.freshSession();
    const session = this.currentSession;
    try {
      return await this.send(document, variables);
    } catch (err) {
      if (!session || !(err instanceof Vidmp3Error) || err.code !== 'UNAUTHENTICATED') throw err;
      if (this.currentSession === session) await this.refreshSession().catch(() => undefined);
      if (!this.currentSession || this.currentSession === session) throw err;
      return this.send(document, variables);
    }
  }

  /** Refreshes the session if its access token expires within REFRESH_AHEAD_MS. */
  private async freshSession(): Promise<void> {
    const session = this.currentSession;
    if (!session || Date.parse(session.expiresAt) - Date.now() > REFRESH_AHEAD_MS) return;
    // A session the server no longer takes shows in the request that follows (UNAUTHENTICATED).
    await this.refreshSession().catch(() => undefined);
  }

  refreshSession(): Promise<Session> {
    const session = this.currentSession;
    if (!session) return Promise.reject(new Vidmp3Error('UNAUTHENTICATED', 'No session to refresh: log in first'));
    this.refreshing ??= this.send(RefreshSessionDocument, { refreshToken: session.refreshToken }, true)
      .then(({ refreshSession }) => {
        // Unless the session changed meanwhile (log-in, log-out): then this answer is not ours to use.
        if (this.currentSession === session) this.useSession(refreshSession);
        return sessionOf(refreshSession);
      })
      .catch((err: unknown) => {
        // The server ended the session (a spent or revoked refresh token): signed out.
        if (err instanceof Vidmp3Error && err.code === 'UNAUTHENTICATED' && this.currentSession === session) {
          this.useSession(null);
        }
        throw err;
      })
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /**
   * One GraphQL request as it is. `anonymous`: without the access token — signing in and refreshing need none,
   * and an expired or refused one would only get them refused at the gateway.
   */
  private async send<TResult, TVariables>(
    document: TypedDocumentString<TResult, TVariables>,
    variables: TVariables,
    anonymous = false,
  ): Promise<TResult> {
    const answer = await fetchAnswer(this.url, {
      method: 'POST',
      headers: {
        ...(anonymous ? this.options.headers : this.headers()),
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
      },
      body: JSON.stringify({ query: document.toString(), variables }),
    });
    return graphqlData<TResult>(answer);
  }

  async signUp(email: string, password: string): Promise<AuthPayload> {
    const { signUp } = await this.send(SignUpDocument, { email, password }, true);
    this.useSession(signUp);
    return signUp;
  }

  async logIn(email: string, password: string): Promise<AuthPayload> {
    const { logIn } = await this.send(LogInDocument, { email, password }, true);
    this.useSession(logIn);
    return logIn;
  }

  async changePassword(currentPassword: string, newPassword: string): Promise<AuthPayload> {
    const { changePassword } = await this.request(ChangePasswordDocument, { currentPassword, newPassword });
    this.useSession(changePassword);
    return changePassword;
  }

  async logOut(): Promise<void> {
    await this.request(LogOutDocument, {});
    this.useSession(null);
  }

  async logOutEverywhere(): Promise<void> {
    await this.request(LogOutEverywhereDocument, {});
    this.useSession(null);
  }

  /**
   * Deletes the signed-in account for good, with everything in it (media, conversions, sessions), after checking
   * its password; the client's session is forgotten. BAD_USER_INPUT (`field: password`) for a wrong password.
   */
  async deleteAccount(password: string): Promise<void> {
    await this.request(DeleteAccountDocument, { password });
    this.useSession(null);
  }

  // Account mails: the links' tokens are their own proof, so those calls go without the access token.

  async resendVerificationEmail(): Promise<boolean> {
    return (await this.request(ResendVerificationEmailDocument, {})).resendVerificationEmail;
  }

  async verifyEmail(token: string): Promise<User> {
    return (await this.send(VerifyEmailDocument, { token }, true)).verifyEmail;
  }

  async requestPasswordReset(email: string): Promise<void> {
    await this.send(RequestPasswordResetDocument, { email }, true);
  }

  async resetPassword(token: string, newPassword: string): Promise<AuthPayload> {
    const { resetPassword } = await this.send(ResetPasswordDocument, { token, newPassword }, true);
    this.useSession(resetPassword);
    return resetPassword;
  }

  async requestEmailChange(newEmail: string, password: string): Promise<void> {
    await this.request(RequestEmailChangeDocument, { newEmail, password });
  }

  async confirmEmailChange(token: string): Promise<User> {
    return (await this.send(ConfirmEmailChangeDocument, { token }, true)).confirmEmailChange;
  }

  async me(): Promise<User | null> {
    return (await this.request(MeDocument, {})).me;
  }

  async notificationSettings(): Promise<NotificationSettings> {
    const { me } = await this.request(NotificationSettingsDocument, {});
    if (!me) throw new Vidmp3Error('UNAUTHENTICATED', 'Log in to see your settings');
    return me.notifications;
  }

  async updateNotificationSettings({ conversionEmails }: NotificationSettings): Promise<NotificationSettings> {
    return (await this.request(UpdateNotificationSettingsDocument, { conversionEmails })).updateNotificationSettings;
  }

  async sessions(): Promise<AccountSession[]> {
    const { me } = await this.request(SessionsDocument, {});
    if (!me) throw new Vidmp3Error('UNAUTHENTICATED', 'Log in to see your sessions');
    return me.sessions;
  }

  async endSession(id: string): Promise<void> {
    await this.request(EndSessionDocument, { id });
  }

  async usage(): Promise<Usage> {
    const { me } = await this.request(UsageDocument, {});
    if (!me) throw new Vidmp3Error('UNAUTHENTICATED', 'Log in to see your usage');
    return me.usage;
  }

  async apiKeys(): Promise<ApiKey[]> {
    const { me } = await this.request(ApiKeysDocument, {});
    if (!me) throw new Vidmp3Error('UNAUTHENTICATED', 'Log in to see your API keys');
    return me.apiKeys;
  }

  async createApiKey(name: string, scopes: ApiKeyScope[]): Promise<CreatedApiKey> {
    return (await this.request(CreateApiKeyDocument, { name, scopes })).createApiKey;
  }

  async revokeApiKey(id: string): Promise<void> {
    await this.request(RevokeApiKeyDocument, { id });
  }

  async uploadVideo(input: UploadInput, options: UploadOptions = {}): Promise<Media> {
    // A stream cannot be sent twice: the session is made fresh before, never refreshed after a refusal.
    await this.freshSession();
    const answer = await this.platform.upload({
      url: this.url,
      // CSRF prevention stays on at the gateway: a multipart POST needs this header to be accepted.
      headers: { ...this.headers(), 'apollo-require-preflight': 'true', accept: 'application/json' },
      operations: JSON.stringify({
        query: UploadVideoDocument.toString(),
        operationName: 'UploadVideo',
        variables: { file: null },
      }),
      map: JSON.stringify({ 0: ['variables.file'] }),
      input,
      filename: options.filename,
      size: options.size,
      onProgress: options.onProgress,
      signal: options.signal,
    });
    return graphqlData<UploadVideoMutation>(answer).uploadVideo;
  }

  async convert(mediaId: string, options?: ConversionOptions): Promise<Job> {
    return (await this.request(ConvertMediaDocument, { mediaId, options: options ?? null })).convertMedia;
  }

  async job(id: string): Promise<Job | null> {
    return (await this.request(JobDocument, { id })).job;
  }

  async media(id: string): Promise<Media | null> {
    return (await this.request(MediaDocument, { id })).media;
  }

  async jobs(filter: JobsFilter = {}): Promise<JobPage> {
    const { me } = await this.request(JobsDocument, {
      status: filter.status ?? null,
      first: filter.first ?? null,
      after: filter.after ?? null,
    });
    if (!me) throw new Vidmp3Error('UNAUTHENTICATED', 'Log in to list your jobs');
    return { jobs: me.jobs.edges.map((edge) => edge.node), pageInfo: me.jobs.pageInfo };
  }

  async cancel(id: string): Promise<Job> {
    return (await this.request(CancelJobDocument, { id })).cancelJob;
  }

  async retry(id: string): Promise<Job> {
    return (await this.request(RetryJobDocument, { id })).retryJob;
  }

  async webhooks(): Promise<Webhook[]> {
    const { me } = await this.request(WebhooksDocument, {});
    if (!me) throw new Vidmp3Error('UNAUTHENTICATED', 'Log in to list your webhooks');
    return me.webhooks;
  }

  async createWebhook(url: string, events: WebhookEvent[]): Promise<CreatedWebhook> {
    return (await this.request(CreateWebhookDocument, { url, events })).createWebhook;
  }

  async deleteWebhook(id: string): Promise<void> {
    await this.request(DeleteWebhookDocument, { id });
  }

  async enableWebhook(id: string): Promise<Webhook> {
    return (await this.request(EnableWebhookDocument, { id })).enableWebhook;
  }

  async sendTestWebhook(id: string): Promise<WebhookDelivery> {
    return (await this.request(SendTestWebhookDocument, { id })).sendTestWebhook;
  }

  async webhookDeliveries(
    webhookId: string,
    page: { first?: number; after?: string } = {},
  ): Promise<WebhookDeliveryPage> {
    const { webhookDeliveries } = await this.request(WebhookDeliveriesDocument, {
      webhookId,
      first: page.first ?? null,
      after: page.after ?? null,
    });
    return { deliveries: webhookDeliveries.edges.map((e) => e.node), pageInfo: webhookDeliveries.pageInfo };
  }

  watchJob(id: string, options: WatchOptions = {}): AsyncGenerator<Job> {
    return watchJob(
      {
        socket: () => this.acquireSocket(),
        queryJob: (jobId) => this.job(jobId),
        wsUrl: this.wsUrl,
        // The socket's token expired: refreshed already by a request meanwhile, or now; then a new socket.
        renew: async () => {
          // An API key outlives the token the gateway exchanged it for: a new socket is exchanged afresh.
          if (this.options.apiKey && this.currentToken === this.options.apiKey) {
            this.retireSocket();
            return true;
          }
          await this.freshSession();
          return this.currentSession !== undefined;
        },
      },
      id,
      options.signal,
    );
  }

  private acquireSocket(): { client: WsClient; release: () => void } {
    const socket = (this.socket ??= {
      client: createWsClient({
        url: this.wsUrl,
        webSocketImpl: this.platform.webSocket,
        // Read when each connection opens, so a reconnect carries the token of the moment — refreshed first when
        // it is about to expire (the gateway closes a socket, 4401, when its token expires: see watch.ts).
        connectionParams: async () => {
          await this.freshSession();
          return this.currentToken ? { authorization: `Bearer ${this.currentToken}` } : {};
        },
        // Lazy: the socket opens with the first watch and closes after the last, so scripts can exit.
        lazy: true,
        // A server that accepts the socket but never acknowledges it is given up on (4418, then retried).
        connectionAckWaitTimeout: 10_000,
        retryAttempts: this.options.retryAttempts ?? 10,
        retryWait,
        // Retry when the socket fails before closing (connection refused while the gateway restarts) and on
        // other closes, but not when the server refuses us: graphql-ws gives up by itself on 4400, 4401, 4406,
        // 4409 and 4429, yet retries 4403 Forbidden, which the gateway sends for an Origin it does not allow.
        shouldRetry: shouldReconnect,
      }),
      users: 0,
      retired: false,
    });
    socket.users++;
    let released = false;
    return {
      client: socket.client,
      release: () => {
        if (released) return;
        released = true;
        socket.users--;
        if (socket.retired && socket.users === 0) disposeQuietly(socket.client);
      },
    };
  }

  download(media: Media | string, destination: string, options?: DownloadOptions): Promise<DownloadedFile>;
  download(media: Media | string, destination?: undefined, options?: DownloadOptions): Promise<Blob>;
  async download(
    media: Media | string,
    destination?: string,
    options: DownloadOptions = {},
  ): Promise<DownloadedFile | Blob> {
    const url = typeof media === 'string' ? await this.downloadUrlOf(media) : media.downloadUrl;
    if (destination === undefined) return downloadBlob(url, options);
    if (!this.platform.downloadToFile) {
      throw new Vidmp3Error('BAD_USER_INPUT', 'Downloading to a file path needs Node; in a browser, omit the path');
    }
    return this.platform.downloadToFile(url, destination, options);
  }

  /** A download link as given, or a media id's freshly signed one. */
  private async downloadUrlOf(urlOrId: string): Promise<string> {
    if (/^https?:\/\//i.test(urlOrId)) return urlOrId;
    const media = await this.media(urlOrId);
    if (!media) throw new Vidmp3Error('NOT_FOUND', `No media ${urlOrId}`);
    return media.downloadUrl;
  }

  async convertFile(input: UploadInput, options: ConvertFileOptions = {}): Promise<ConvertFileResult> {
    const { onProgress, signal } = options;
    // An mp3 already where it would be written: say so now, not after the upload and the conversion. The download
    // checks again (atomically) at the end, for a file that appears meanwhile or a name only the server knows.
    if (!options.overwrite) await this.platform.checkOutput?.(input, options.output);
    const media = await this.uploadVideo(input, {
      filename: options.filename,
      size: options.size,
      signal,
      onProgress: (p) => onProgress?.({ phase: 'upload', ...p }),
    });
    if (signal?.aborted) throw aborted(signal.reason);
    let job = await this.convert(media.id, options.options);
    onProgress?.({ phase: 'convert', status: job.status, progress: job.progress });
    try {
      for await (const update of this.watchJob(job.id, { signal })) {
        job = update;
        onProgress?.({ phase: 'convert', status: job.status, progress: job.progress });
      }
    } catch (err) {
      // The caller gave up: do not leave a conversion running for nobody.
      if (isAbort(err)) await this.cancel(job.id).catch(() => undefined);
      throw err;
    }
    if (job.status === 'FAILED') {
      throw new Vidmp3Error('JOB_FAILED', job.error?.message ?? 'The conversion failed', {
        extensions: { job, jobErrorCode: job.error?.code },
      });
    }
    if (job.status === 'CANCELLED') {
      throw new Vidmp3Error('CANCELLED', 'The conversion was cancelled', { extensions: { job } });
    }
    if (!isFinalStatus(job.status) || !job.output) {
      throw new Vidmp3Error('INTERNAL', `Job ${job.id} ended ${job.status} without an output`);
    }
    const output = job.output;
    if (!this.platform.outputPath || !this.platform.downloadToFile) return { media, job, output };
    const target = await this.platform.outputPath(input, output, options.output);
    const file = await this.platform.downloadToFile(output.downloadUrl, target, {
      signal,
      overwrite: options.overwrite,
      onProgress: (p) => onProgress?.({ phase: 'download', ...p }),
    });
    return { media, job, output, path: file.path };
  }

  close(): void {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) disposeQuietly(socket.client);
  }
}

export function createClientOn(platform: Platform, options: ClientOptions): Client {
  return new Vidmp3Client(platform, options);
}
