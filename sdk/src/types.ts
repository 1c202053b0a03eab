import type {
  ApiKeyFieldsFragment,
  ApiKeyScope as GeneratedApiKeyScope,
  ConversionOptions as GeneratedConversionOptions,
  JobFieldsFragment,
  JobStatus as GeneratedJobStatus,
  MediaFieldsFragment,
  AccountSessionFieldsFragment,
  NotificationSettingsFieldsFragment,
  UsageFieldsFragment,
  UserFieldsFragment,
  WebhookDeliveryFieldsFragment,
  WebhookEvent as GeneratedWebhookEvent,
  WebhookFieldsFragment,
} from './generated/graphql.js';

/** Instants (`createdAt`, `expiresAt`, …) are ISO 8601 strings in UTC, as the API sends them. */
export type User = UserFieldsFragment;
export type Media = MediaFieldsFragment;
export type Job = JobFieldsFragment;
export type JobStatus = GeneratedJobStatus;
export type ConversionOptions = GeneratedConversionOptions;
/**
 * What you use of the instance and your limits: `storageBytes`/`storageLimitBytes` (uploads and mp3s),
 * `uploadsInProgress`/`concurrentUploadsLimit`, `activeJobs`/`activeJobsLimit` (queued or running),
 * `conversionsLastHour`/`conversionsPerHourLimit`.
 */
export type Usage = UsageFieldsFragment;

/** Which emails you receive: `conversionEmails`, when a conversion of yours succeeds or fails (off by default). */
export type NotificationSettings = NotificationSettingsFieldsFragment;
/**
 * One of your sign-ins still going (`sessions()`): when it signed in, when and from which address it was last
 * used, and whether it is this client's (`current`).
 */
export type AccountSession = AccountSessionFieldsFragment;
/** An API key as listed (never the key itself); `lastUsedAt` is to within minutes, null when never used. */
export type ApiKey = ApiKeyFieldsFragment;
/** READ: queries and subscriptions; CONVERT: also upload, convert, cancel, retry and delete. */
export type ApiKeyScope = GeneratedApiKeyScope;

/** What createApiKey returns: the key, shown this once, and its details. */
export interface CreatedApiKey {
  key: string;
  apiKey: ApiKey;
}

export interface AuthPayload extends Session {
  user: User;
}

/**
 * A signed-in session: a short-lived access token and the refresh token that renews it. The client refreshes
 * by itself (shortly before the access token expires, or when the server says it has) and hands every new
 * session to `onSession`, so a program can keep it (the refresh token changes at every refresh: an old one,
 * used again, ends the session everywhere).
 */
export interface Session {
  accessToken: string;
  /** When the access token expires (ISO 8601). */
  expiresAt: string;
  refreshToken: string;
  /** When the refresh token expires unless used before (ISO 8601). */
  refreshTokenExpiresAt: string;
}

/** A webhook of yours (never its secret, shown once by `createWebhook`). */
export type Webhook = WebhookFieldsFragment;
/** One event sent (or being sent) to a webhook: status, attempts, the last response and the next retry. */
export type WebhookDelivery = WebhookDeliveryFieldsFragment;
/** What a webhook subscribes to: `JOB_SUCCEEDED`, … (its payloads' `type` is `job.succeeded`, …). */
export type WebhookEvent = GeneratedWebhookEvent;

export interface CreatedWebhook {
  webhook: Webhook;
  /** The signing secret (`whsec_…`), for `verifyWebhook` in your receiver; shown this once. */
  secret: string;
}

export interface WebhookDeliveryPage {
  /** Newest first. */
  deliveries: WebhookDelivery[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

export interface JobPage {
  /** Newest first. */
  jobs: Job[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

export interface ClientOptions {
  /** The gateway's GraphQL endpoint, e.g. `http://127.0.0.1:4000/graphql`. */
  url: string;
  /** A bearer token from signUp/logIn. Without `session`, it is used as it is, never refreshed. */
  token?: string | undefined;
  /**
   * An API key (`vmp3_…`, from createApiKey): sent as the bearer on every request and WebSocket; nothing to
   * refresh. Wins over `session` and `token`. It can do what its scopes allow, and never manage the account.
   */
  apiKey?: string | undefined;
  /** A session kept from an earlier run (`onSession`): used and refreshed as needed. Wins over `token`. */
  session?: Session | undefined;
  /** Called with every new session (sign-up, log-in, refresh, password change), and with null once it ended. */
  onSession?: ((session: Session | null) => void) | undefined;
  /** The graphql-ws endpoint; defaults to `url` with http(s) turned into ws(s). */
  wsUrl?: string | undefined;
  /** How many times watchJob reconnects after losing its WebSocket (default 10). */
  retryAttempts?: number | undefined;
  /** Extra headers on every HTTP request. */
  headers?: Record<string, string> | undefined;
}

export interface Progress {
  loaded: number;
  /** Unknown for a stream of unknown length. */
  total?: number | undefined;
}

/**
 * What uploadVideo accepts: in Node a file path or a Readable (any async iterable of bytes), or a Blob/File;
 * in browsers a File or Blob.
 */
export type UploadInput = string | Blob | AsyncIterable<Uint8Array>;

export interface UploadOptions {
  /** The name the server records (defaults to the file's own name). */
  filename?: string | undefined;
  /** For a stream input: its length in bytes, so progress has a total. */
  size?: number | undefined;
  onProgress?: ((progress: Progress) => void) | undefined;
  signal?: AbortSignal | undefined;
}

export interface DownloadOptions {
  onProgress?: ((progress: Progress) => void) | undefined;
  signal?: AbortSignal | undefined;
  /**
   * Node: replace the destination file if it exists. Default false: an existing file is left alone and the
   * download fails with BAD_USER_INPUT.
   */
  overwrite?: boolean | undefined;
}

export interface DownloadedFile {
  /** Where the file was written. */
  path: string;
  bytes: number;
}

export interface WatchOptions {
  signal?: AbortSignal | undefined;
}

export interface JobsFilter {
  status?: JobStatus | undefined;
  first?: number | undefined;
  after?: string | undefined;
}

export type ConvertProgress =
  | { phase: 'upload'; loaded: number; total?: number | undefined }
  | { phase: 'convert'; status: JobStatus; progress: number }
  | { phase: 'download'; loaded: number; total?: number | undefined };

export interface ConvertFileOptions {
  options?: ConversionOptions | undefined;
  /** Node: where to write the mp3 (a file, or an existing directory). Default: beside the input, as `<name>.mp3`. */
  output?: string | undefined;
  /**
   * Node: replace a file already at the output path. Default false: it is left alone and convertFile fails with
   * BAD_USER_INPUT, before uploading when the path is known up front (an output file, or beside a path input),
   * else when the mp3 is downloaded (which checks again in any case).
   */
  overwrite?: boolean | undefined;
  /** The name the server records for the upload. */
  filename?: string | undefined;
  /** For a stream input: its length in bytes, so upload progress has a total. */
  size?: number | undefined;
  onProgress?: ((event: ConvertProgress) => void) | undefined;
  /** Aborting stops the upload or download, and cancels the job if it was already queued. */
  signal?: AbortSignal | undefined;
}

export interface ConvertFileResult {
  /** The uploaded video. */
  media: Media;
  /** The job in its final state (SUCCEEDED). */
  job: Job;
  /** The mp3; its `downloadUrl` is short-lived. */
  output: Media;
  /** Node: where the mp3 was written. Browsers do not download (link to `output.downloadUrl` instead). */
  path?: string | undefined;
}

export interface Client {
  /** The bearer token sent with every request, if any. */
  readonly token: string | undefined;
  /** Uses this token from now on, as it is (no session: nothing to refresh). */
  setToken(token: string | undefined): void;
  /** The current session, if signed in with one. */
  readonly session: Session | undefined;
  /** Trades the refresh token for a new session now (the client also does it by itself when needed). */
  refreshSession(): Promise<Session>;
  /** Ends this session on the server and forgets it here. */
  logOut(): Promise<void>;
  /** Ends every session of this user, this one included. */
  logOutEverywhere(): Promise<void>;
  /**
   * Deletes the account for good — its media, files, conversions, sessions — after checking its password; the
   * session is forgotten here. BAD_USER_INPUT (`field: password`) for a wrong password, RATE_LIMITED after several.
   */
  deleteAccount(password: string): Promise<void>;
  /** Changes the password; every other session ends, and this client goes on with the new one it gets. */
  changePassword(currentPassword: string, newPassword: string): Promise<AuthPayload>;
  /** Creates an account and uses its token from now on. */
  signUp(email: string, password: string): Promise<AuthPayload>;
  /** Logs in and uses the token from now on. */
  logIn(email: string, password: string): Promise<AuthPayload>;
  /** Mails a new verification link to your address; false (nothing sent) when it is verified already. */
  resendVerificationEmail(): Promise<boolean>;
  /** Verifies an address with the token from its link (`?verify-email=`); needs no sign-in. */
  verifyEmail(token: string): Promise<User>;
  /** Mails a reset link if the address has an account; says nothing either way (never reveals accounts). */
  requestPasswordReset(email: string): Promise<void>;
  /** Sets a new password with the token from a reset link (`?reset-password=`): every other session ends, and this client uses the new one. */
  resetPassword(token: string, newPassword: string): Promise<AuthPayload>;
  /** Mails a confirmation link to a new address; the account moves there once it is used. */
  requestEmailChange(newEmail: string, password: string): Promise<void>;
  /** Moves the account to the address a link was mailed to, with its token (`?confirm-email=`); needs no sign-in. */
  confirmEmailChange(token: string): Promise<User>;
  /** The signed-in user, or null without a token. */
  me(): Promise<User | null>;
  /** Which emails you receive; UNAUTHENTICATED without a token. */
  notificationSettings(): Promise<NotificationSettings>;
  /** Turns emails on or off; the settings as they now are. */
  updateNotificationSettings(settings: NotificationSettings): Promise<NotificationSettings>;
  /** Your sessions still going, most recently used first; UNAUTHENTICATED without a token. */
  sessions(): Promise<AccountSession[]>;
  /** Ends one of your sessions (NOT_FOUND unless it is yours and going); ending this client's own signs it out. */
  endSession(id: string): Promise<void>;
  /** Your usage and limits; UNAUTHENTICATED without a token. */
  usage(): Promise<Usage>;
  /** Your API keys, newest first. */
  apiKeys(): Promise<ApiKey[]>;
  /** Creates an API key (a logged-in session only); the key is in the answer, and never shown again. */
  createApiKey(name: string, scopes: ApiKeyScope[]): Promise<CreatedApiKey>;
  /** Revokes one of your API keys (a logged-in session only); NOT_FOUND when there is no such key of yours. */
  revokeApiKey(id: string): Promise<void>;
  /** Uploads a video with the GraphQL multipart request spec, streaming it. */
  uploadVideo(input: UploadInput, options?: UploadOptions): Promise<Media>;
  /** Queues the conversion of an uploaded video to mp3. */
  convert(mediaId: string, options?: ConversionOptions): Promise<Job>;
  /** One of your jobs; NOT_FOUND when it does not exist or is not yours. */
  job(id: string): Promise<Job | null>;
  /** One of your media (a video or an mp3), with a fresh signed `downloadUrl`; NOT_FOUND when it is not yours. */
  media(id: string): Promise<Media | null>;
  /** Your jobs, newest first. */
  jobs(filter?: JobsFilter): Promise<JobPage>;
  /** The job's current state, then every change, until it reaches a final state. Reconnects when the socket drops. */
  watchJob(id: string, options?: WatchOptions): AsyncIterableIterator<Job>;
  cancel(id: string): Promise<Job>;
  retry(id: string): Promise<Job>;
  /** Node: streams the file to `destination` (a file path, or an existing directory). */
  download(media: Media | string, destination: string, options?: DownloadOptions): Promise<DownloadedFile>;
  /** Without a destination: the bytes as a Blob (held in memory; the way to go in browsers). */
  download(media: Media | string, destination?: undefined, options?: DownloadOptions): Promise<Blob>;
  /** Upload → convert → watch → download, with progress for each phase. Throws JOB_FAILED or CANCELLED. */
  convertFile(input: UploadInput, options?: ConvertFileOptions): Promise<ConvertFileResult>;
  /** Your webhooks, oldest first. */
  webhooks(): Promise<Webhook[]>;
  /** Creates a webhook; the result's `secret` is shown this once. BAD_USER_INPUT for a URL it may not call. */
  createWebhook(url: string, events: WebhookEvent[]): Promise<CreatedWebhook>;
  deleteWebhook(id: string): Promise<void>;
  /** Turns a webhook disabled after repeated failures back on. */
  enableWebhook(id: string): Promise<Webhook>;
  /** Sends a `webhook.test` event now; returns its delivery (PENDING until the first attempt). */
  sendTestWebhook(id: string): Promise<WebhookDelivery>;
  /** A webhook's deliveries, newest first. */
  webhookDeliveries(webhookId: string, page?: { first?: number; after?: string }): Promise<WebhookDeliveryPage>;
  /** Closes the WebSocket, if one is open. */
  close(): void;
}
