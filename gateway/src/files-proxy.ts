import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Request, Response } from 'express';
import { REQUEST_ID_HEADER } from '@vidmp3/shared';

const forwardedRequestHeaders = ['range', 'if-range', 'if-none-match', 'if-modified-since'];
const forwardedResponseHeaders = [
  'content-type',
  'content-length',
  'content-range',
  'accept-ranges',
  'etag',
  'last-modified',
  'content-disposition',
  'cache-control',
  'x-content-type-options',
];

/** A media id as media mints them (UUIDs); nothing with a dot, a slash or a backslash can pass. */
const MEDIA_ID = /^[A-Za-z0-9-]{1,64}$/;
/** The signature parameters as media writes them: unix seconds, base64url HMAC. */
const EXPIRES = /^\d{1,12}$/;
const SIGNATURE = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The upstream URL of a public download request, or why there is none. Built from the validated parts only,
 * never from the path the client sent: URL parsers treat `\` as `/` and resolve `..`, so forwarding
 * `req.originalUrl` let `/files/..\metrics` reach media's `/metrics` (issue #10, defect 4).
 */
export function downloadTarget(
  id: unknown,
  query: Record<string, unknown>,
  mediaOrigin: string,
): { url: URL } | { status: 403 | 404 } {
  if (typeof id !== 'string' || !MEDIA_ID.test(id)) return { status: 404 };
  const { expires, sig } = query;
  if (typeof expires !== 'string' || !EXPIRES.test(expires) || typeof sig !== 'string' || !SIGNATURE.test(sig)) {
    return { status: 403 };
  }
  const url = new URL(`/files/${id}`, mediaOrigin);
  url.searchParams.set('expires', expires);
  url.searchParams.set('sig', sig);
  return { url };
}

/**
 * Public `/files/:id` → media's `/files/:id`: signed download links live on the gateway's origin, the bytes
 * come from media. Streams both ways (Range and conditional requests pass through); nothing is buffered, and
 * the upstream request stops when the client does.
 */
export function filesProxy(mediaOrigin: string) {
  return async (req: Request, res: Response): Promise<void> => {
    const target = downloadTarget(req.params.id, req.query, mediaOrigin);
    if ('status' in target) {
      // The same answers media gives a missing file or a bad signature, without asking it.
      res
        .status(target.status)
        .json(
          target.status === 404
            ? { error: 'NOT_FOUND', message: 'This file no longer exists' }
            : { error: 'LINK_INVALID', message: 'Invalid link' },
        );
      return;
    }
    const controller = new AbortController();
    res.on('close', () => controller.abort());
    const headers = new Headers({ [REQUEST_ID_HEADER]: res.locals.requestId });
    for (const name of forwardedRequestHeaders) {
      const value = req.header(name);
      if (value) headers.set(name, value);
    }
    let upstream: globalThis.Response;
    try {
      upstream = await fetch(target.url, {
        method: req.method,
        headers,
        redirect: 'manual',
        signal: controller.signal,
      });
    } catch (err) {
      if (controller.signal.aborted) return;
      res.locals.log.error({ err }, 'media unreachable for a download');
      res.status(502).json({ error: 'INTERNAL', requestId: res.locals.requestId });
      return;
    }
    res.status(upstream.status);
    for (const name of forwardedResponseHeaders) {
      const value = upstream.headers.get(name);
      if (value !== null) res.setHeader(name, value);
    }
    if (!upstream.body || req.method === 'HEAD') {
      res.end();
      return;
    }
    try {
      await pipeline(Readable.fromWeb(upstream.body as WebReadableStream<Uint8Array>), res);
    } catch (err) {
      if (!controller.signal.aborted) res.locals.log.warn({ err }, 'download interrupted');
    }
  };
}
