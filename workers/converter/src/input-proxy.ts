// ffmpeg reads the input through this loopback proxy, which adds the internal API token on the way to media.
//
// Why a proxy: ffmpeg only takes HTTP headers as an argument (`-headers`), and anything in argv is readable by
// every process on the host (/proc/<pid>/cmdline, `ps`) and ends up in crash reports; it has no option to read
// them from a file. A short-lived per-job URL from media would need a new contract in media; a temporary copy
// of the input would cost a second copy of up to 2 GiB on disk and the time to write it before ffmpeg starts.
// The proxy keeps the token in this process only, forwards `Range` so ffmpeg can still seek (an mp4 whose moov
// atom is at the end), and lets ffmpeg's protocol whitelist shrink to plain http on loopback.
//
// The proxy answers one random, unguessable path (256 bits) for the life of one conversion, on 127.0.0.1 only:
// another local process that learns the URL from ffmpeg's argv can read this one input while the conversion
// runs, and nothing else — not another media file, not another internal route, not after the job.
import { randomBytes, timingSafeEqual } from 'node:crypto';
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

/** Opens a proxy for one input: `target` is read with `headers` added (e.g. the bearer token). */
export async function openInputProxy(target: string, headers: Record<string, string>): Promise<InputProxy> {
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

  const server = createServer((req, res) => {
    if (!isOurPath(req.url)) {
      res.writeHead(404, { 'content-length': 0 }).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 }).end();
      return;
    }
    forward(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}${secretPath.toString()}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive and in-flight connections would hold close() open; closing them ends the forwards too.
        server.closeAllConnections();
      }),
  };
}
