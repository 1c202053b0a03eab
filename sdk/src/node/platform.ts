// Node: uploads stream from a file path or a Readable through node:http(s), downloads stream to disk, and
// graphql-ws runs over the `ws` package (Node 20 has no global WebSocket).
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { link, rename, rm, stat } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import WebSocket from 'ws';
import { aborted, networkError, Vidmp3Error } from '../errors.js';
import { contentLength, fetchOk } from '../http.js';
import type { HttpAnswer, MultipartUpload, Platform } from '../platform.js';
import type { DownloadedFile, DownloadOptions, Media, Progress, UploadInput } from '../types.js';

/** A local file that cannot be read or written: the caller's to fix, so BAD_USER_INPUT. */
function fileError(action: 'read' | 'write', path: string, err: NodeJS.ErrnoException): Vidmp3Error {
  const why =
    err.code === 'ENOENT' ? 'no such file or directory' : err.code === 'EACCES' ? 'permission denied' : err.message;
  return new Vidmp3Error('BAD_USER_INPUT', `Cannot ${action} ${path}: ${why}`, { cause: err });
}

interface OpenedInput {
  stream: AsyncIterable<Uint8Array>;
  size: number | undefined;
  filename: string;
}

async function openInput(input: UploadInput, filename?: string, size?: number): Promise<OpenedInput> {
  if (typeof input === 'string') {
    const info = await stat(input).catch((err: NodeJS.ErrnoException) => {
      throw fileError('read', input, err);
    });
    if (!info.isFile()) throw new Vidmp3Error('BAD_USER_INPUT', `Cannot read ${input}: not a file`);
    return { stream: createReadStream(input), size: info.size, filename: filename ?? basename(input) };
  }
  if (input instanceof Blob) {
    const name = filename ?? (input instanceof File && input.name ? input.name : 'upload');
    return {
      stream: Readable.fromWeb(input.stream() as NodeWebReadableStream<Uint8Array>),
      size: input.size,
      filename: name,
    };
  }
  const path = (input as Partial<ReadStream>).path;
  const ownName = typeof path === 'string' ? basename(path) : undefined;
  return { stream: input, size, filename: filename ?? ownName ?? 'upload' };
}

/** A Content-Disposition filename parameter; non-ASCII names go in RFC 5987's `filename*` (busboy reads it). */
function filenameParameter(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  if (ascii === name) return `filename="${name}"`;
  return `filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** The multipart body: operations, map, then the file, streamed as it is read. */
async function* multipartBody(
  boundary: string,
  upload: MultipartUpload,
  file: OpenedInput,
  onChunk: (bytes: number) => void,
): AsyncGenerator<Uint8Array> {
  const field = (name: string, value: string) =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  yield Buffer.from(
    field('operations', upload.operations) +
      field('map', upload.map) +
      `--${boundary}\r\nContent-Disposition: form-data; name="0"; ${filenameParameter(file.filename)}\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  for await (const chunk of file.stream) {
    onChunk(chunk.byteLength);
    yield chunk;
  }
  yield Buffer.from(`\r\n--${boundary}--\r\n`);
}

async function readAnswer(res: IncomingMessage): Promise<HttpAnswer> {
  res.setEncoding('utf8');
  let text = '';
  for await (const chunk of res) text += chunk as string;
  return {
    status: res.statusCode ?? 0,
    statusText: res.statusMessage ?? '',
    header: (name) => {
      const value = res.headers[name.toLowerCase()];
      return Array.isArray(value) ? value[0] : value;
    },
    text,
  };
}

/**
 * An upload fails when its socket is idle this long: nothing sent, nothing received. The server's longest silence
 * is checking the stored file after the last byte (ffprobe, capped at 30 s there).
 */
const UPLOAD_IDLE_TIMEOUT_MS = 120_000;

async function upload(req: MultipartUpload): Promise<HttpAnswer> {
  const input = req.input;
  if (req.signal?.aborted) throw aborted(req.signal.reason);
  const file = await openInput(req.input, req.filename, req.size);
  const boundary = `vidmp3-${randomBytes(16).toString('hex')}`;
  const url = new URL(req.url);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  let loaded = 0;
  const report = (p: Progress) => req.onProgress?.(p);
  report({ loaded, total: file.size });
  const request = send(url, {
    method: 'POST',
    headers: { ...req.headers, 'content-type': `multipart/form-data; boundary=${boundary}` },
    ...(req.signal ? { signal: req.signal } : {}),
  });
  // A server that goes silent (no bytes either way) would otherwise hold the upload forever.
  request.setTimeout(req.idleTimeoutMs ?? UPLOAD_IDLE_TIMEOUT_MS, () =>
    request.destroy(Object.assign(new Error('the server stopped answering'), { code: 'ETIMEDOUT' })),
  );
  const answered = new Promise<IncomingMessage>((resolve, reject) => {
    request.once('response', resolve);
    request.once('error', reject);
  });
  // A failure of the body (the file, the socket) also fails the request, so it surfaces through `answered`.
  const sent = pipeline(
    Readable.from(
      multipartBody(boundary, req, file, (bytes) => {
        loaded += bytes;
        report({ loaded, total: file.size });
      }),
    ),
    request,
  ).catch(() => undefined);
  try {
    const answer = await readAnswer(await answered);
    // A server that refuses an upload early (too large) answers before the body is all sent: stop sending.
    if (!request.writableFinished) request.destroy();
    await sent;
    return answer;
  } catch (err) {
    if (req.signal?.aborted) throw aborted(req.signal.reason);
    const failure = err as NodeJS.ErrnoException;
    if (typeof input === 'string' && failure.path === input) throw fileError('read', input, failure);
    throw networkError(err, req.url);
  } finally {
    if (file.stream instanceof Readable) file.stream.destroy();
  }
}

/** A destination that is already taken (without `overwrite`): the caller's to fix, so BAD_USER_INPUT. */
function fileExists(path: string, cause?: unknown): Vidmp3Error {
  return new Vidmp3Error(
    'BAD_USER_INPUT',
    `Cannot write ${path}: the file already exists (pass overwrite: true to replace it)`,
    {
      ...(cause === undefined ? {} : { cause }),
      extensions: { path },
    },
  );
}

async function exists(path: string): Promise<'dir' | 'file' | false> {
  const info = await stat(path).catch(() => undefined);
  return info ? (info.isDirectory() ? 'dir' : 'file') : false;
}

/** The file a download writes: `destination` itself, or a file named after the media inside a directory. */
async function targetPath(destination: string, url: string, suggested?: string): Promise<string> {
  if ((await exists(destination)) !== 'dir') return resolve(destination);
  const fromUrl = basename(new URL(url).pathname);
  return join(resolve(destination), basename(suggested ?? fromUrl) || 'download');
}

async function downloadToFile(url: string, destination: string, options: DownloadOptions): Promise<DownloadedFile> {
  const res = await fetchOk(url, options.signal);
  const disposition = /filename="([^"]+)"/.exec(res.headers.get('content-disposition') ?? '')?.[1];
  const path = await targetPath(destination, url, disposition);
  // Written under a temporary name beside the target, then put in place: a failed download leaves no partial
  // file. link() refuses to replace a file that exists (rename would silently overwrite it), unless `overwrite`.
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.part`);
  const total = contentLength(res);
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      options.onProgress?.({ loaded: bytes, total });
      callback(null, chunk);
    },
  });
  try {
    await pipeline(
      Readable.fromWeb(res.body as NodeWebReadableStream<Uint8Array>),
      counter,
      createWriteStream(temp, { flags: 'wx' }),
      ...(options.signal ? [{ signal: options.signal }] : []),
    );
    if (options.overwrite) await rename(temp, path);
    else await link(temp, path);
  } catch (err) {
    if (options.signal?.aborted) throw aborted(options.signal.reason);
    const failure = err as NodeJS.ErrnoException;
    if (failure.code === 'EEXIST' && failure.syscall === 'link') throw fileExists(path, err);
    if (failure.path === temp || failure.path === path) throw fileError('write', path, failure);
    throw networkError(err, url);
  } finally {
    // After link() the file has two names: drop the temporary one (after a rename, or a failure, it may be gone).
    await rm(temp, { force: true });
  }
  return { path, bytes };
}

/**
 * Where convertFile writes the mp3 when that is known before the conversion: the requested file, or beside a path
 * input (`clip.mp4` → `clip.mp3`). Undefined when the server's file name decides it (a directory, or a stream).
 */
async function knownOutputPath(input: UploadInput, requested: string | undefined): Promise<string | undefined> {
  if (requested !== undefined) return (await exists(requested)) === 'dir' ? undefined : resolve(requested);
  if (typeof input === 'string') return join(dirname(resolve(input)), `${basename(input, extname(input))}.mp3`);
  return undefined;
}

/** Beside the input, in the requested file or directory (named by the server), or in the working directory. */
async function outputPath(input: UploadInput, output: Media, requested: string | undefined): Promise<string> {
  const known = await knownOutputPath(input, requested);
  if (known !== undefined) return known;
  return join(resolve(requested ?? '.'), basename(output.filename));
}

/** Fails as the download would, before anything is uploaded, when the mp3's path is known and a file is there. */
async function checkOutput(input: UploadInput, requested: string | undefined): Promise<void> {
  const path = await knownOutputPath(input, requested);
  if (path !== undefined && (await exists(path)) === 'file') throw fileExists(path);
}

export const nodePlatform: Platform = { webSocket: WebSocket, upload, downloadToFile, outputPath, checkOutput };
