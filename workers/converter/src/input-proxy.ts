// ffmpeg reads the input through this loopback proxy, which adds the internal API token on the way to media.
//
// Why a proxy: ffmpeg only takes HTTP headers as an argument (`-headers`), and anything in argv is readable by
// every process on the host (/proc/<pid>/cmdline, `ps`) and ends up in crash reports; it has no option to read
// them from a file. A short-lived per-job URL from media would need a new contract in media; a temporary copy
// of the input would cost a second copy of up to 2 GiB on disk and the time to write it before ffmpeg starts.
// The proxy keeps the token in this process only, forwards `Range` so ffmpeg can still seek (an mp4 whose moov
// atom is at the end), and lets ffmpeg's protocol whitelist shrink to plain http on loopback.
//
// A small input (up to `copy.maxBytes`, e.g. a clip) is first fetched whole, in one request, into a file beside the
// output, and ffmpeg's range requests are then answered from that file: reading an mp4 whose moov atom is at the
// end takes ffmpeg several requests (start, end, back to the data), each of which would otherwise be a round
// trip through media (its checks, its database, its disk) while ffmpeg waits. Larger inputs are passed through as
// they are requested, so no second copy of a big file is written. Anything unexpected while copying (an error
// status, a broken body, a size over the limit) drops the copy and passes requests through, so ffmpeg sees
// media's own answers and fails or retries exactly as it would have.
//
// The proxy answers one random, unguessable path (256 bits) for the life of one conversion, on 127.0.0.1 only:
// another local process that learns the URL from ffmpeg's argv can read this one input while the conversion
// runs, and nothing else — not another media file, not another internal route, not after the job.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';

/** What ffmpeg may ask of media: a byte range (seeking) and nothing else it could use to pick a resource. */
const REQUEST_HEADERS = ['range', 'if-range'] as const;
/** What ffmpeg needs to know of the answer: size, range, type. Never `location` (a redirect would leave us). */
const RESPONSE_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'last-modified', 'etag'];

export interface InputProxy {
  /** `http://127.0.0.1:<port>/<random>`: the input, as ffmpeg should read it. */
  url: string;
  /** Stops answering, and cuts any request still in flight. */
  close: () => Promise<void>;
}

function pick(headers: IncomingHttpHeaders, names: readonly string[]): Record<string, string | string[]> {
  const picked: Record<string, string | string[]> = {};
  for (const name of names) {
    const value = headers[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

/** Where a small input is copied before ffmpeg starts, and up to what size. */
export interface LocalCopy {
  /** The file to write (removed when the proxy closes). */
  path: string;
  maxBytes: number;
  /** Stops the copy (the conversion was cancelled); the proxy then passes through, and ffmpeg is never started. */
  signal?: AbortSignal;
}

/** A copy whose connection stays silent this long is given up (ffmpeg then reads through, with its own timeout). */
const COPY_IDLE_TIMEOUT_MS = 30_000;

/**
 * Opens a proxy for one input: `target` is read with `headers` added (e.g. the bearer token); with `copy`, a
 * small input is fetched whole first and served from that file.
 */
export async function openInputProxy(
  target: string,
  headers: Record<string, string>,
  copy?: LocalCopy,
): Promise<InputProxy> {
  const targetUrl = new URL(target);
  const send =
    targetUrl.protocol === 'https:' ? httpsRequest : targetUrl.protocol === 'http:' ? httpRequest : undefined;
  if (!send) throw new Error(`the input must be an http(s) URL, not ${targetUrl.protocol}`);
  const secretPath = Buffer.from(`/${randomBytes(32).toString('base64url')}`);

  const isOurPath = (url: string | undefined) => {
    const given = Buffer.from(url ?? '');
    return given.length === secretPath.length && timingSafeEqual(given, secretPath);
  };

  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const upstream = send(targetUrl, {
      method: req.method,
      headers: { ...headers, ...pick(req.headers, REQUEST_HEADERS) },
    });
    // ffmpeg closes its connection whenever it seeks: stop reading from media then.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, pick(answer.headers, RESPONSE_HEADERS));
      pipeline(answer, res).catch(() => {
        // Media broke off mid-body: reset ffmpeg's connection too, so it sees a failed read (transient) and not
        // a clean end of file that could pass a truncated input for a whole one.
        if (!res.socket?.destroyed) res.socket?.resetAndDestroy();
      });
    });
    upstream.on('error', () => {
      // Media unreachable: ffmpeg reports "Server returned 5XX", which the worker retries, as it would retry
      // ffmpeg's own "Connection refused".
      if (!res.headersSent) res.writeHead(502, 'Bad Gateway', { 'content-length': 0 }).end();
      else if (!res.socket?.destroyed) res.socket?.resetAndDestroy();
    });
    upstream.end();
  };

  const local = copy ? await copyInput(targetUrl, send, headers, copy) : undefined;

  const server = createServer((req, res) => {
    if (!isOurPath(req.url)) {
      res.writeHead(404, { 'content-length': 0 }).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
      return;
    }
    if (local) serveFile(local, req, res);
    else forward(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}${secretPath.toString()}`,
    // Once, however often it is called (the conversion and transcode may both close it).
    close: () =>
      (closed ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Keep-alive and in-flight connections would hold close() open; closing them ends the forwards too.
          server.closeAllConnections();
        });
        if (copy) await rm(copy.path, { force: true });
      })()),
  };
}

/** A complete local copy of the input: its file, size and the headers media sent with it. */
interface CopiedInput {
  path: string;
  size: number;
  contentType: string | undefined;
}

/**
 * Fetches the whole input into `copy.path` when media answers 200 with a length within `copy.maxBytes`, and the
 * body arrives whole. Otherwise (or on any error) removes what was written and resolves undefined: the proxy then
 * passes requests through.
 */
async function copyInput(
  target: URL,
  send: typeof httpRequest,
  headers: Record<string, string>,
  copy: LocalCopy,
): Promise<CopiedInput | undefined> {
  try {
    const answer = await new Promise<IncomingMessage>((resolve, reject) => {
      const request = send(target, { method: 'GET', headers, ...(copy.signal ? { signal: copy.signal } : {}) });
      request.setTimeout(COPY_IDLE_TIMEOUT_MS, () => request.destroy(new Error('the copy stalled')));
      request.once('response', resolve).once('error', reject).end();
    });
    const size = Number(answer.headers['content-length']);
    if (answer.statusCode !== 200 || !Number.isSafeInteger(size) || size > copy.maxBytes) {
      answer.destroy();
      return undefined;
    }
    await pipeline(answer, createWriteStream(copy.path));
    // A body cut short (media stopped mid-way) must not pass for the whole input.
    if ((await stat(copy.path)).size !== size) throw new Error('the copy is not the size media announced');
    return { path: copy.path, size, contentType: answer.headers['content-type'] };
  } catch {
    await rm(copy.path, { force: true }).catch(() => undefined);
    return undefined;
  }
}

/** Answers a GET or HEAD from the local copy: the whole file, or the one byte range asked for. */
function serveFile(file: CopiedInput, req: IncomingMessage, res: ServerResponse): void {
  const range = parseRange(req.headers.range, file.size);
  if (range === 'unsatisfiable') {
    res.writeHead(416, { 'content-range': `bytes */${file.size}`, 'content-length': 0 }).end();
    return;
  }
  const { start, end } = range ?? { start: 0, end: file.size - 1 };
  res.writeHead(range ? 206 : 200, {
    ...(file.contentType ? { 'content-type': file.contentType } : {}),
    'accept-ranges': 'bytes',
    'content-length': String(end - start + 1),
    ...(range ? { 'content-range': `bytes ${start}-${end}/${file.size}` } : {}),
  });
  if (req.method === 'HEAD' || end < start) {
    res.end();
    return;
  }
  // ffmpeg closes its connection whenever it seeks: the stream is destroyed with the response then.
  pipeline(createReadStream(file.path, { start, end }), res).catch(() => undefined);
}

/**
 * The single range of a `Range: bytes=…` header (ffmpeg asks for one: `start-` or `start-end`), null for the
 * whole file (no header, or a form this proxy does not serve partially, which HTTP allows to answer whole).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | null {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? '');
  if (!match || (match[1] === '' && match[2] === '')) return null;
  let start: number;
  let end: number;
  if (match[1] === '') {
    // A suffix: the last N bytes.
    start = Math.max(0, size - Number(match[2]));
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}
