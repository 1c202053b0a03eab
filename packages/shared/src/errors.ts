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
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const httpStatus: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
};

/** A user-facing error: thrown where the rule lives, shown to the client as it is. */
export function userError(code: ErrorCode, message: string, extra: Record<string, unknown> = {}): GraphQLError {
  const status = httpStatus[code];
  return new GraphQLError(message, {
    extensions: { code, ...extra, ...(status ? { http: { status } } : {}) },
  });
}

/**
 * Codes a client may see with their original message. Apollo's own request errors (parse, validation,
 * bad request, CSRF) are safe too: they describe the client's request, never our internals.
 */
const publicCodes = new Set<string>([
  ...Object.values(ErrorCode),
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

/** Apollo `formatError`: known codes pass; anything else becomes INTERNAL without stack, SQL or paths. */
export function createFormatError(options: FormatErrorOptions) {
  return (formatted: GraphQLFormattedError): GraphQLFormattedError => {
    if (isPublicError(formatted)) {
      const { stacktrace: _dropped, exception: _alsoDropped, ...extensions } = formatted.extensions ?? {};
      return { ...formatted, extensions };
    }
    // Logged (with the request id) by the server's error-logging plugin, not here.
    return {
      message: options.exposeInternals ? formatted.message : 'Internal server error',
      ...(formatted.path ? { path: formatted.path } : {}),
      ...(formatted.locations ? { locations: formatted.locations } : {}),
      extensions: { code: ErrorCode.INTERNAL },
    };
  };
}
