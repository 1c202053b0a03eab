import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
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

type MinorGc = (options: { type: 'minor' }) => void;
let minorGc: MinorGc | null | undefined;
/** Upload bytes received (by every upload of the process) since the last collection. */
let received = 0;

/** V8's `gc()`, reached without starting Node with --expose-gc; null where V8 refuses it. */
function getMinorGc(): MinorGc | null {
  if (minorGc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      minorGc = runInNewContext('gc') as MinorGc;
    } catch {
      minorGc = null;
    }
  }
  return minorGc;
}

const RECLAIM_EVERY_BYTES = 8 * 1024 * 1024;

/**
 * Frees the buffers a streamed upload leaves behind as it goes. Node copies every piece of a request body it
 * parses into a new 64 KiB buffer; once passed on, each is garbage, but its memory lies outside V8's heap and
 * V8 collects it only when such memory has grown by 64 MiB, or when the little garbage an upload makes on the
 * heap fills the young generation. A 1 GiB upload thus raised the peak RSS of the gateway and of media by
 * 35–45 MB each (issue #11). A young-generation collection every 8 MiB received (well under a millisecond,
 * when only the stream's few objects are alive) keeps that garbage under ~10 MB. Call the returned function
 * with each chunk's size; uploads running at once share the count, so collections follow the bytes received.
 */
export function reclaimUploadBuffers(): (chunkBytes: number) => void {
  const gc = getMinorGc();
  if (!gc) return () => undefined;
  return (chunkBytes) => {
    received += chunkBytes;
    if (received < RECLAIM_EVERY_BYTES) return;
    received = 0;
    gc({ type: 'minor' });
  };
}
