// Every failure the SDK reports is a Vidmp3Error whose `code` is the API's `extensions.code`, or one of the SDK's
// own codes for what happens on the client's side (network, aborts, a job that ends badly).

/** The codes the API documents, plus the SDK's own. Unknown codes from a newer server pass through as strings. */
export type KnownErrorCode =
  | 'UNAUTHENTICATED'
  | 'NOT_FOUND'
  | 'BAD_USER_INPUT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA'
  | 'CONFLICT'
  | 'RATE_LIMITED'
  /**
   * A limit of your account is reached (storage, uploads or conversions at once, conversions per hour, live
   * connections or subscriptions): `quota`, `limit` and `used` say which and how far; `describeQuota` words it.
   */
  | 'QUOTA_EXCEEDED'
  | 'INTERNAL'
  /**
   * An API key may not do this: it lacks the scope (`extensions.capability`: `convert`), or it is account
   * management, which needs a logged-in session. Also watchJob: the gateway refused the WebSocket (4403), in a
   * browser because the page's Origin is not allowed.
   */
  | 'FORBIDDEN'
  /** The server could not be reached, or answered with something that is not a GraphQL response. */
  | 'NETWORK_ERROR'
  /** convertFile: the conversion ended FAILED (`job.error` says why). */
  | 'JOB_FAILED'
  /** convertFile: the conversion was cancelled. */
  | 'CANCELLED'
  /** The caller's AbortSignal fired. */
  | 'ABORTED';

// `string & {}` keeps editor completion for the known codes while accepting any other.
export type ErrorCode = KnownErrorCode | (string & {});

/** The limits QUOTA_EXCEEDED can name; the same names as the fields of `usage()`. Others pass through. */
export type KnownQuota =
  'storageBytes' | 'concurrentUploads' | 'activeJobs' | 'conversionsPerHour' | 'webSocketConnections' | 'subscriptions';
export type Quota = KnownQuota | (string & {});

export interface Vidmp3ErrorOptions {
  /** The gateway's `x-request-id` for the failed request: quote it when reporting a problem. */
  requestId?: string | undefined;
  /** The HTTP status of the response, when there was one. */
  status?: number | undefined;
  /** The error's `extensions`, as the server sent them. */
  extensions?: Record<string, unknown> | undefined;
  cause?: unknown;
}

export class Vidmp3Error extends Error {
  override readonly name = 'Vidmp3Error';
  readonly code: ErrorCode;
  readonly requestId: string | undefined;
  readonly status: number | undefined;
  readonly extensions: Record<string, unknown> | undefined;
  /** QUOTA_EXCEEDED: which limit (from `extensions.quota`). */
  readonly quota: Quota | undefined;
  /** QUOTA_EXCEEDED: the limit (bytes for storageBytes, else a count). */
  readonly limit: number | undefined;
  /** QUOTA_EXCEEDED: what you use now, in the same unit. */
  readonly used: number | undefined;

  constructor(code: ErrorCode, message: string, options: Vidmp3ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.requestId = options.requestId;
    this.status = options.status;
    this.extensions = options.extensions;
    const { quota, limit, used } = options.extensions ?? {};
    this.quota = typeof quota === 'string' ? quota : undefined;
    this.limit = typeof limit === 'number' ? limit : undefined;
    this.used = typeof used === 'number' ? used : undefined;
  }
}

export interface GraphQLErrorBody {
  message?: unknown;
  extensions?: Record<string, unknown> | null;
}

/** The first GraphQL error of a response as a Vidmp3Error (the SDK's operations have one root field each). */
export function fromGraphQLErrors(
  errors: readonly GraphQLErrorBody[],
  options: { requestId?: string | undefined; status?: number | undefined } = {},
): Vidmp3Error {
  const first = errors[0] ?? {};
  const extensions = first.extensions ?? undefined;
  const code = typeof extensions?.code === 'string' ? extensions.code : 'INTERNAL';
  const message = typeof first.message === 'string' && first.message !== '' ? first.message : code;
  return new Vidmp3Error(code, message, { ...options, extensions });
}

/** An HTTP answer that carried no GraphQL errors, by its status. */
export function fromHttpStatus(status: number, statusText: string, requestId?: string): Vidmp3Error {
  const code: ErrorCode =
    status === 401
      ? 'UNAUTHENTICATED'
      : status === 404
        ? 'NOT_FOUND'
        : status === 413
          ? 'PAYLOAD_TOO_LARGE'
          : status === 429
            ? 'RATE_LIMITED'
            : 'NETWORK_ERROR';
  const text = statusText ? `${status} ${statusText}` : String(status);
  return new Vidmp3Error(code, `The server answered ${text}`, { status, requestId });
}

export function isAbort(err: unknown): boolean {
  return (
    (err instanceof Vidmp3Error && err.code === 'ABORTED') ||
    (typeof err === 'object' && err !== null && 'name' in err && err.name === 'AbortError')
  );
}

export const aborted = (cause?: unknown) =>
  new Vidmp3Error('ABORTED', 'The operation was aborted', cause === undefined ? {} : { cause });

/** A failure to talk to the server (fetch's "fetch failed", a socket error) in words a person can act on. */
export function networkError(err: unknown, url: string): Vidmp3Error {
  if (err instanceof Vidmp3Error) return err;
  if (isAbort(err)) return aborted(err);
  const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : undefined;
  const detail = code ?? (cause instanceof Error ? cause.message : String(cause));
  let where = url;
  try {
    where = new URL(url).origin;
  } catch {
    // keep the text as given
  }
  return new Vidmp3Error('NETWORK_ERROR', `Cannot reach ${where} (${detail})`, { cause: err });
}

/** 1.5 GB, 120 MB, 900 B: binary units, as file managers show sizes. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/**
 * A QUOTA_EXCEEDED error in words a person can act on ("Storage full: 2.0 GB of 2.0 GB used. Delete …"), or
 * undefined for any other error. The figures come from the error's `limit` and `used`; without them, the
 * server's own message.
 */
export function describeQuota(error: unknown): string | undefined {
  // By shape, not instanceof: an app may hold errors of a second copy of the SDK (or rebuilt from JSON).
  if (typeof error !== 'object' || error === null || !('code' in error) || error.code !== 'QUOTA_EXCEEDED') {
    return undefined;
  }
  const message = 'message' in error && typeof error.message === 'string' ? error.message : 'Over a limit';
  const extensions = 'extensions' in error && typeof error.extensions === 'object' ? error.extensions : undefined;
  const { quota, limit, used } = (extensions ?? {}) as Record<string, unknown>;
  if (typeof limit !== 'number' || typeof used !== 'number') return message;
  switch (quota) {
    case 'storageBytes': {
      const room = 'Delete videos or mp3s you no longer need to make room.';
      // Refused before the storage is full too: when this file would not fit in what is left.
      return used >= limit
        ? `Storage full: ${formatBytes(used)} of ${formatBytes(limit)} used. ${room}`
        : `Not enough storage left for this file: ${formatBytes(used)} of ${formatBytes(limit)} used, ${formatBytes(limit - used)} free. ${room}`;
    }
    case 'concurrentUploads':
      return `Too many uploads at once: ${used} of ${limit} in progress. Wait for one to finish, then try again.`;
    case 'activeJobs':
      return `Too many conversions at once: ${used} of ${limit} queued or running. Wait for one to finish, then try again.`;
    case 'conversionsPerHour':
      return `Hourly conversion limit reached: ${used} of ${limit} in the last hour. Try again later.`;
    case 'webSocketConnections':
      return `Too many live connections: at most ${limit} at once. Close other tabs or clients, then try again.`;
    case 'subscriptions':
      return `Too many live updates at once: ${used} of ${limit}. Stop watching some jobs, then try again.`;
    default:
      return message;
  }
}
