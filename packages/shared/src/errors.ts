import { GraphQLError, type GraphQLFormattedError } from 'graphql';

/** The public error codes of the API contract (shared DESIGN.md). */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  NOT_FOUND: 'NOT_FOUND',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  UNSUPPORTED_MEDIA: 'UNSUPPORTED_MEDIA',
  CONFLICT: 'CONFLICT',
  RATE_LIMITED: 'RATE_LIMITED',
  /** A per-user limit is reached; `extensions` carry `quota`, `limit` and `used` (see quotaExceeded). */
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED',
  INTERNAL: 'INTERNAL',
  /**
   * Signed in, but this credential may not do this: an API key without the scope, or any API key for account
   * management (`extensions.capability` says what was missing).
   */
  FORBIDDEN: 'FORBIDDEN',
  /** A dependency (the database, another service) is down or unreachable right now: try again shortly. */
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * A user-facing error: thrown where the rule lives, shown to the client as it is. Resolver errors travel in
 * a 200 response (GraphQL over HTTP); pass `http.status` only for errors that fail the whole request.
 */
export function userError(code: ErrorCode, message: string, extra: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extra } });
}

/** The per-user limits a client can run into; the names match the fields of `User.usage`. */
export type QuotaName =
  'storageBytes' | 'concurrentUploads' | 'activeJobs' | 'conversionsPerHour' | 'webSocketConnections' | 'subscriptions';

/**
 * QUOTA_EXCEEDED with what was exceeded, the limit and the current use, so that a client can say
 * "2.0 GB of 2.0 GB used" without parsing the message.
 */
export function quotaExceeded(quota: QuotaName, limit: number, used: number, message: string): GraphQLError {
  return userError(ErrorCode.QUOTA_EXCEEDED, message, { quota, limit, used });
}

/**
 * Codes a client may see with their original message. Apollo's own request errors (parse, validation,
 * bad request, CSRF) are safe too: they describe the client's request, never our internals.
 */
const publicCodes = new Set<string>([
  // INTERNAL is never passed through as it is: a subgraph's own INTERNAL message is masked again at the edge.
  ...Object.values(ErrorCode).filter((code) => code !== ErrorCode.INTERNAL),
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'OPERATION_RESOLUTION_FAILURE',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
]);

/** True when the error describes the client's request; false for our own failures. */
export function isPublicError(error: { extensions?: Record<string, unknown> }): boolean {
  const code = error.extensions?.code;
  return typeof code === 'string' && publicCodes.has(code);
}

export interface FormatErrorOptions {
  /** Development keeps the original message of unexpected errors (never the stack). */
  exposeInternals: boolean;
}

// Internal details a subgraph error can carry through the gateway: stacks, upstream URLs and bodies.
const internalExtensions = new Set(['stacktrace', 'exception', 'response', 'serviceName', 'http']);

function publicExtensions(extensions: Record<string, unknown> = {}): Record<string, unknown> {
  return Object.fromEntries(Object.entries(extensions).filter(([key]) => !internalExtensions.has(key)));
}

// Node's and mysql2's codes for a connection that could not be made or was lost: the peer is down or unreachable.
const connectionLostCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
]);

/**
 * True when an error (or what it wraps: `originalError`, `cause`) is a lost or refused connection to a
 * dependency, or a request to one that timed out: a failure of the moment, not of the request.
 */
export function isDependencyDown(error: unknown): boolean {
  let current = error;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth++) {
    const { code, name, fatal, sqlState } = current as Record<string, unknown>;
    if (typeof code === 'string' && connectionLostCodes.has(code)) return true;
    // mysql2's "Can't add new command when connection is in closed state" and the like: the connection is
    // gone (fatal) and the server said nothing (no SQL state).
    if (fatal === true && sqlState === undefined) return true;
    if (name === 'TimeoutError') return true;
    const wrapper = current as { originalError?: unknown; cause?: unknown };
    current = wrapper.originalError ?? wrapper.cause;
  }
  return false;
}

const unavailableMessage = 'A service this request needs is unavailable right now; try again shortly';

/**
 * Apollo `formatError`: known codes pass; a dependency that is down becomes SERVICE_UNAVAILABLE; anything else
 * becomes INTERNAL. Neither carries a stack, SQL or paths.
 */
export function createFormatError(options: FormatErrorOptions) {
  return (formatted: GraphQLFormattedError, error?: unknown): GraphQLFormattedError => {
    if (isPublicError(formatted)) {
      return { ...formatted, extensions: publicExtensions(formatted.extensions) };
    }
    // Logged (with the request id) by the server's error-logging plugin, not here.
    const unavailable = isDependencyDown(error);
    return {
      message: options.exposeInternals ? formatted.message : unavailable ? unavailableMessage : 'Internal server error',
      ...(formatted.path ? { path: formatted.path } : {}),
      ...(formatted.locations ? { locations: formatted.locations } : {}),
      extensions: { code: unavailable ? ErrorCode.SERVICE_UNAVAILABLE : ErrorCode.INTERNAL },
    };
  };
}
