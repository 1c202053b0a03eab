import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { create as contentDisposition } from 'content-disposition';
import type { Request, Response } from 'express';
import parseRange from 'range-parser';
import type { ByteRange } from '../adapters/blob-store.js';
import type { MediaRecord } from '../adapters/media-repo.js';

/**
 * Answers GET/HEAD for one media: a single byte range (206) when asked, conditional requests by ETag (the
 * sha256), and Content-Disposition with the original name. Multi-range requests get the whole file, which
 * RFC 9110 allows. The body streams from the blob store; nothing is buffered.
 */
export async function sendMedia(
  req: Request,
  res: Response,
  media: MediaRecord,
  open: (range?: ByteRange) => Promise<Readable>,
): Promise<void> {
  const etag = `"${media.sha256}"`;
  res.set({
    'Accept-Ranges': 'bytes',
    ETag: etag,
    'Last-Modified': media.createdAt.toUTCString(),
    'Content-Type': media.contentType,
    'Content-Disposition': contentDisposition(media.filename, { type: 'attachment' }),
    'Cache-Control': 'private, no-cache',
    'X-Content-Type-Options': 'nosniff',
  });
  // Evaluated here rather than with Express's req.fresh, which ignores validators whenever the request says
  // `Cache-Control: no-cache` — as fetch() does on every conditional request. An origin server must not.
  if (matchesEtag(req.headers['if-none-match'], etag)) {
    res.status(304).end();
    return;
  }

  let range: ByteRange | undefined;
  const rangeHeader = req.headers.range;
  const ifRange = req.headers['if-range'];
  if (rangeHeader && (!ifRange || ifRange === etag)) {
    const parsed = parseRange(media.byteSize, rangeHeader, { combine: true });
    if (parsed === -1) {
      res.status(416).set('Content-Range', `bytes */${media.byteSize}`).end();
      return;
    }
    if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1 && parsed[0]) {
      range = { start: parsed[0].start, end: parsed[0].end };
    }
  }

  if (range) {
    res.status(206).set('Content-Range', `bytes ${range.start}-${range.end}/${media.byteSize}`);
    res.set('Content-Length', String(range.end - range.start + 1));
  } else {
    res.status(200).set('Content-Length', String(media.byteSize));
  }
  if (req.method === 'HEAD' || media.byteSize === 0) {
    res.end();
    return;
  }
  const body = await open(range);
  try {
    await pipeline(body, res);
  } catch (err) {
    // The client went away mid-download: nothing to answer; anything else is ours to log.
    if ((err as { code?: string }).code !== 'ERR_STREAM_PREMATURE_CLOSE')
      res.locals.log.warn({ err }, 'download failed');
  }
}

/** RFC 9110 If-None-Match: `*`, or a list of entity tags compared weakly. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}
