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

/**
 * Public `/files/...` → media's `/files/...`: signed download links live on the gateway's origin, the bytes
 * come from media. Streams both ways (Range and conditional requests pass through); nothing is buffered, and
 * the upstream request stops when the client does.
 */
export function filesProxy(mediaOrigin: string) {
  return async (req: Request, res: Response): Promise<void> => {
    const controller = new AbortController();
    res.on('close', () => controller.abort());
    const headers = new Headers({ [REQUEST_ID_HEADER]: res.locals.requestId });
    for (const name of forwardedRequestHeaders) {
      const value = req.header(name);
      if (value) headers.set(name, value);
    }
    let upstream: globalThis.Response;
    try {
      upstream = await fetch(new URL(req.originalUrl, mediaOrigin), {
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
