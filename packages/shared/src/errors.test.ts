import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createFormatError, ErrorCode, isPublicError, userError } from './errors.js';

const production = createFormatError({ exposeInternals: false });
const development = createFormatError({ exposeInternals: true });

// What Apollo Server (and the gateway, for a subgraph's error) hands to formatError: the internals travel
// in the extensions.
const internals = {
  stacktrace: ['Error: boom', '    at Object.resolve (/srv/app/subgraphs/users/src/resolvers.ts:12:9)'],
  exception: { sql: 'SELECT * FROM users WHERE id = ?', errno: 1146 },
  response: { status: 500, url: 'http://users:4001/graphql', body: '{"errors":[…]}' },
  serviceName: 'users',
  http: { status: 500, headers: {} },
};

/** A formatted error as it reaches formatError, with every internal extension attached. */
function reported(message: string, extensions: Record<string, unknown> = {}): GraphQLFormattedError {
  return {
    message,
    path: ['me', 'email'],
    locations: [{ line: 1, column: 3 }],
    extensions: { ...extensions, ...internals },
  };
}

describe('userError', () => {
  it('is a GraphQLError carrying the code and any extra extensions', () => {
    const error = userError(ErrorCode.BAD_USER_INPUT, 'Email address is not valid', { field: 'email' });

    expect(error).toBeInstanceOf(GraphQLError);
    expect(error.message).toBe('Email address is not valid');
    expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'email' });
  });

  it('is public, so clients see it as it was thrown', () => {
    const error = userError(ErrorCode.NOT_FOUND, 'Media not found');

    expect(isPublicError(error)).toBe(true);
    expect(production(error.toJSON())).toEqual({ message: 'Media not found', extensions: { code: 'NOT_FOUND' } });
  });
});

describe('isPublicError', () => {
  it.each(Object.values(ErrorCode).filter((c) => c !== 'INTERNAL'))('treats the API code %s as public', (code) => {
    expect(isPublicError({ extensions: { code } })).toBe(true);
  });

  it('masks INTERNAL again at every edge, so a subgraph in development mode cannot leak through', () => {
    expect(isPublicError({ extensions: { code: 'INTERNAL' } })).toBe(false);
    const formatted = createFormatError({ exposeInternals: false })({
      message: 'connect ECONNREFUSED 10.0.0.7:3306',
      extensions: { code: 'INTERNAL' },
    });
    expect(formatted).toEqual({ message: 'Internal server error', extensions: { code: 'INTERNAL' } });
  });

  it.each(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_REQUEST', 'PERSISTED_QUERY_NOT_FOUND'])(
    "treats Apollo's request error %s as public",
    (code) => {
      expect(isPublicError({ extensions: { code } })).toBe(true);
    },
  );

  it.each([
    ['no extensions', {}],
    ['no code', { extensions: { field: 'email' } }],
    ["Apollo's INTERNAL_SERVER_ERROR", { extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
    ['a driver error code', { extensions: { code: 'ER_NO_SUCH_TABLE' } }],
    ['a gateway upstream failure', { extensions: { code: 'DOWNSTREAM_SERVICE_ERROR' } }],
    ['a code that is not a string', { extensions: { code: 404 } }],
    ['a lower-case spelling', { extensions: { code: 'not_found' } }],
  ])('treats an error with %s as internal', (_, error) => {
    expect(isPublicError(error)).toBe(false);
  });
});

describe('createFormatError', () => {
  describe('for a public error', () => {
    it('keeps the message, path, locations and safe extensions', () => {
      const formatted = production(
        reported('Too many attempts; try again in 30 s', { code: 'RATE_LIMITED', retryAfterSeconds: 30 }),
      );

      expect(formatted).toEqual({
        message: 'Too many attempts; try again in 30 s',
        path: ['me', 'email'],
        locations: [{ line: 1, column: 3 }],
        extensions: { code: 'RATE_LIMITED', retryAfterSeconds: 30 },
      });
    });

    it('drops stacktrace, exception, response, serviceName and http in development too', () => {
      const formatted = development(reported('Password is too short', { code: 'BAD_USER_INPUT', field: 'password' }));

      expect(formatted.message).toBe('Password is too short');
      expect(formatted.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'password' });
    });

    it("keeps Apollo's own request errors readable", () => {
      const formatted = production({
        message: 'Cannot query field "nope" on type "Query".',
        locations: [{ line: 1, column: 3 }],
        extensions: { code: 'GRAPHQL_VALIDATION_FAILED', stacktrace: ['GraphQLError: …'] },
      });

      expect(formatted).toEqual({
        message: 'Cannot query field "nope" on type "Query".',
        locations: [{ line: 1, column: 3 }],
        extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
      });
    });
  });

  describe('for an unexpected error in production', () => {
    it('answers INTERNAL with a generic message, keeping only where it happened', () => {
      const formatted = production(
        reported("Table 'vidmp3_users.users' doesn't exist: SELECT * FROM users", {
          code: 'INTERNAL_SERVER_ERROR',
        }),
      );

      expect(formatted).toEqual({
        message: 'Internal server error',
        path: ['me', 'email'],
        locations: [{ line: 1, column: 3 }],
        extensions: { code: 'INTERNAL' },
      });
    });

    it('leaves no trace of the stack, SQL, upstream or file paths anywhere in the response', () => {
      const text = JSON.stringify(production(reported('ECONNREFUSED 10.0.0.7:3306 at /srv/app/mysql.ts')));

      for (const leak of ['stacktrace', 'resolvers.ts', 'SELECT', 'users:4001', 'ECONNREFUSED', '/srv/app']) {
        expect(text).not.toContain(leak);
      }
    });

    it('treats an error without any code as unexpected', () => {
      expect(production({ message: 'Cannot read properties of undefined' })).toEqual({
        message: 'Internal server error',
        extensions: { code: 'INTERNAL' },
      });
    });

    it('leaves out path and locations when the error had none', () => {
      const formatted = production({ message: 'boom', extensions: { code: 'DOWNSTREAM_SERVICE_ERROR' } });

      expect(Object.keys(formatted).sort()).toEqual(['extensions', 'message']);
    });
  });

  describe('for a dependency that is down', () => {
    const lost = (code: string) => Object.assign(new Error(`connect ${code} 10.0.0.7:3306`), { code });

    it.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'PROTOCOL_CONNECTION_LOST'])(
      'answers SERVICE_UNAVAILABLE for %s, however deeply wrapped, without the address',
      (code) => {
        const original = new GraphQLError('wrapped', {
          originalError: new Error('fetch failed', { cause: lost(code) }),
        });
        const formatted = production(reported(`connect ${code} 10.0.0.7:3306`), original);

        expect(formatted).toEqual({
          message: 'A service this request needs is unavailable right now; try again shortly',
          path: ['me', 'email'],
          locations: [{ line: 1, column: 3 }],
          extensions: { code: 'SERVICE_UNAVAILABLE' },
        });
      },
    );

    it("answers SERVICE_UNAVAILABLE for mysql2's command on a closed connection, INTERNAL for a fatal server error", () => {
      const closed = Object.assign(new Error("Can't add new command when connection is in closed state"), {
        fatal: true,
      });
      const denied = Object.assign(new Error('Access denied'), { fatal: true, sqlState: '28000' });
      expect(production(reported('closed'), closed).extensions).toEqual({ code: 'SERVICE_UNAVAILABLE' });
      expect(production(reported('denied'), denied).extensions).toEqual({ code: 'INTERNAL' });
    });

    it('answers SERVICE_UNAVAILABLE for a request to one that timed out', () => {
      const timeout = Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' });
      expect(production(reported('aborted'), timeout).extensions).toEqual({ code: 'SERVICE_UNAVAILABLE' });
    });

    it("passes a subgraph's SERVICE_UNAVAILABLE through the gateway as it is", () => {
      expect(isPublicError({ extensions: { code: 'SERVICE_UNAVAILABLE' } })).toBe(true);
    });

    it('keeps INTERNAL for any other error', () => {
      const other = Object.assign(new Error('Duplicate entry'), { code: 'ER_DUP_ENTRY' });
      expect(production(reported('Duplicate entry'), other).extensions).toEqual({ code: 'INTERNAL' });
    });
  });

  describe('for an unexpected error in development', () => {
    it('keeps the original message but still no stack or other internals', () => {
      const formatted = development(reported("Table 'vidmp3_users.users' doesn't exist"));

      expect(formatted).toEqual({
        message: "Table 'vidmp3_users.users' doesn't exist",
        path: ['me', 'email'],
        locations: [{ line: 1, column: 3 }],
        extensions: { code: 'INTERNAL' },
      });
    });
  });
});
