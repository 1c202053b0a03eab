import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Express, NextFunction, Request, Response } from 'express';
import { GraphQLError } from 'graphql';
import {
  InternalApi,
  isDependencyDown,
  isPublicError,
  OutputUploadHeaders,
  serviceTokenAuth,
  type MediaFacts,
  type OutputUploadResponse,
} from '@vidmp3/shared';
import type { DownloadLinks } from '../services/download-links.js';
import type { MediaService } from '../services/media.js';
import { sendMedia } from './send-media.js';

type Handler = (req: Request, res: Response) => Promise<void>;

/** Express 5 forwards rejections; this maps our user errors to HTTP statuses and masks the rest. */
const route =
  (handler: Handler) =>
  (req: Request, res: Response, next: NextFunction): Promise<void> =>
    handler(req, res).catch((err: unknown) => {
      if (res.headersSent) return next(err);
      if (err instanceof GraphQLError && isPublicError(err)) {
        const code = String(err.extensions.code);
        // QUOTA_EXCEEDED: 403 with the quota, limit and use, so a worker can fail the job for good with that code.
        // UNAUTHENTICATED (a job output of a deleted account): 410, which a worker takes as final too.
        const status = {
          NOT_FOUND: 404,
          UNSUPPORTED_MEDIA: 415,
          PAYLOAD_TOO_LARGE: 413,
          QUOTA_EXCEEDED: 403,
          UNAUTHENTICATED: 410,
        }[code];
        const { quota, limit, used } = err.extensions;
        res.status(status ?? 400).json({
          error: code,
          message: err.message,
          ...(code === 'QUOTA_EXCEEDED' ? { quota, limit, used } : {}),
        });
        return;
      }
      res.locals.log.error({ err }, 'request failed');
      // The database lost: a failure of the moment, which the caller may retry (and tell its own caller so).
      if (isDependencyDown(err)) {
        res.status(503).json({ error: 'SERVICE_UNAVAILABLE', requestId: res.locals.requestId });
        return;
      }
      res.status(500).json({ error: 'INTERNAL', requestId: res.locals.requestId });
    });

/**
 * `/files/:id`: signed, short-lived download links (what `Media.downloadUrl` returns; the gateway proxies
 * its public `/files/` here). The signature is the authorisation: only the owner could obtain it.
 */
export function fileRoutes(app: Express, media: MediaService, links: DownloadLinks): void {
  const handler = route(async (req, res) => {
    const id = String(req.params.id);
    const check = links.check(id, req.query.expires, req.query.sig);
    if (!check.ok) {
      res.status(403).json({
        error: check.reason === 'expired' ? 'LINK_EXPIRED' : 'LINK_INVALID',
        message: check.reason === 'expired' ? 'This download link has expired; ask for a new one' : 'Invalid link',
      });
      return;
    }
    const record = await media.findAny(id);
    if (!record) {
      res.status(404).json({ error: 'NOT_FOUND', message: 'This file no longer exists' });
      return;
    }
    await sendMedia(req, res, record, (range) => media.openContent(id, range).then((c) => c.stream));
  });
  app.get('/files/:id', handler);
  app.head('/files/:id', handler);
}

/** The body's declared length, when it is a plain number (a chunked body has none). */
function announcedLength(req: Request): number | undefined {
  const value = Number(req.headers['content-length']);
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

/**
 * The internal API (jobs and the converter workers): a media's facts; its bytes, ranged, so ffmpeg can seek in
 * an mp4 whose moov atom is at the end; and a job's mp3, written idempotently per job. Authenticated by a
 * service token; never routed by the gateway.
 */
export function internalRoutes(app: Express, media: MediaService, token: string): void {
  app.use('/internal', serviceTokenAuth(token));

  // What jobs needs to accept a conversion: who owns it, what it is, how long it lasts.
  app.get(
    InternalApi.mediaFacts.route,
    route(async (req, res) => {
      const record = await media.findAny(String(req.params.id));
      if (!record) {
        res.status(404).json({ error: 'NOT_FOUND' });
        return;
      }
      res.json({
        id: record.id,
        ownerId: record.ownerId,
        kind: record.kind,
        filename: record.filename,
        durationSeconds: record.durationSeconds,
      } satisfies MediaFacts);
    }),
  );

  const content = route(async (req, res) => {
    const id = String(req.params.id);
    const record = await media.findAny(id);
    if (!record) {
      res.status(404).json({ error: 'NOT_FOUND' });
      return;
    }
    await sendMedia(req, res, record, (range) => media.openContent(id, range).then((c) => c.stream));
  });
  app.get(InternalApi.mediaContent.route, content);
  app.head(InternalApi.mediaContent.route, content);

  app.put(
    InternalApi.outputUpload.route,
    route(async (req, res) => {
      const headers = OutputUploadHeaders.safeParse(req.headers);
      if (!headers.success) {
        res.status(400).json({ error: 'BAD_REQUEST', message: 'x-owner-id and x-source-media-id are required' });
        return;
      }
      // A failed store (over the limit, say) tears its input down; were that the request itself, the socket
      // would go with it and the worker would see a reset instead of our 413. Read what is left, then answer.
      const body = req.pipe(new PassThrough());
      const { media: stored, created } = await media
        .storeDerivedAudio(
          {
            jobId: String(req.params.jobId),
            ownerId: headers.data['x-owner-id'],
            sourceMediaId: headers.data['x-source-media-id'],
          },
          body,
          announcedLength(req),
        )
        .catch(async (err: unknown) => {
          req.unpipe(body);
          req.resume();
          await finished(req).catch(() => undefined);
          throw err;
        });
      res.status(created ? 201 : 200).json({
        id: stored.id,
        byteSize: stored.byteSize,
        sha256: stored.sha256,
        durationSeconds: stored.durationSeconds,
        created,
      } satisfies OutputUploadResponse);
    }),
  );
}
