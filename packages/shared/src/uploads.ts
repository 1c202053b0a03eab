import type { RequestHandler } from 'express';
import { ErrorCode, userError } from './errors.js';
import { graphqlUploadExpress } from 'graphql-upload-minimal';

/**
 * graphql-upload-minimal's multipart parser for /graphql, hardened. The library listens for the parser's
 * errors with `once`, but busboy can emit a second one ("Unexpected end of form") while it is destroyed after
 * a first (a malformed part header): unheard, that 'error' event would crash the process — any client could
 * take a service down with one bad request. A lasting listener on the pipe's destination (the parser)
 * absorbs the second error; the library still handles the first and answers 400.
 */
export function multipartUploads(options: { maxFileSize: number; maxFiles: number }): RequestHandler {
  const parse = graphqlUploadExpress(options);
  return (req, res, next) => {
    if (!req.is('multipart/form-data')) return next();
    const pipe = req.pipe.bind(req);
    req.pipe = <T extends NodeJS.WritableStream>(destination: T, pipeOptions?: { end?: boolean }): T => {
      destination.on('error', () => undefined);
      return pipe(destination, pipeOptions);
    };
    parse(req, res, next);
  };
}

/**
 * The multipart parser's failures as the client's errors: its HTTP 413 (file over the limit) becomes
 * PAYLOAD_TOO_LARGE; a malformed or cut-off request body becomes BAD_USER_INPUT. Anything else is ours.
 */
export function uploadFailure(err: unknown, maxBytes: number): Error {
  const status = (err as { status?: number } | null)?.status;
  if (status === 413) {
    return userError(ErrorCode.PAYLOAD_TOO_LARGE, `The file is larger than the limit of ${maxBytes} bytes`);
  }
  if (status !== undefined && status >= 400 && status < 500) {
    return userError(ErrorCode.BAD_USER_INPUT, `The upload could not be read: ${(err as Error).message}`);
  }
  // busboy's own parse errors carry no status: they describe the request body, never our state.
  if (err instanceof Error && /^(Malformed|Unexpected end of form|Part terminated)/.test(err.message)) {
    return userError(ErrorCode.BAD_USER_INPUT, `The upload could not be read: ${err.message}`);
  }
  return err instanceof Error ? err : new Error(String(err));
}
