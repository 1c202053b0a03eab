import { randomBytes } from 'node:crypto';
import type { FileUpload, Upload } from 'graphql-upload-minimal';
import { reclaimUploadBuffers, uploadFailure } from '@vidmp3/shared';

/** graphql-upload-minimal's `Upload`, recognised by shape: the gateway only ever sees it in variables. */
export function isUpload(value: unknown): value is Upload {
  const promise = (value as { promise?: { then?: unknown } } | null)?.promise;
  return typeof promise?.then === 'function';
}

/** Every upload in an operation's variables, with its object path in the multipart `map` syntax. */
export function findUploads(value: unknown, path = 'variables'): { path: string; upload: Upload }[] {
  if (isUpload(value)) return [{ path, upload: value }];
  if (Array.isArray(value)) return value.flatMap((item, i) => findUploads(item, `${path}.${i}`));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, item]) => findUploads(item, `${path}.${key}`));
  }
  return [];
}

/** The variables with every upload replaced by null, as the spec's `operations` field wants them. */
export function withoutUploads(value: unknown): unknown {
  if (isUpload(value)) return null;
  if (Array.isArray(value)) return value.map(withoutUploads);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withoutUploads(item)]));
  }
  return value;
}

// Quotes and line breaks cannot appear raw in a part header; encode them as browsers do (WHATWG).
const headerValue = (s: string) => s.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
const safeMime = (s: string) => (/^[\w.+-]+\/[\w.+-]+$/.test(s) ? s : 'application/octet-stream');

/**
 * A GraphQL multipart request (operations → map → the one file) as a byte stream: the file's bytes pass
 * through as they arrive from the client, never collected. The parser upstream reads parts in this order.
 */
export function multipartBody(operations: string, map: string, file: FileUpload, maxBytes: number) {
  const boundary = `----vidmp3${randomBytes(16).toString('hex')}`;
  async function* body(): AsyncGenerator<Buffer> {
    const part = (headers: string) => Buffer.from(`--${boundary}\r\n${headers}\r\n\r\n`);
    yield Buffer.concat([
      part('Content-Disposition: form-data; name="operations"'),
      Buffer.from(`${operations}\r\n`),
      part('Content-Disposition: form-data; name="map"'),
      Buffer.from(`${map}\r\n`),
      part(
        `Content-Disposition: form-data; name="0"; filename="${headerValue(file.filename)}"\r\n` +
          `Content-Type: ${safeMime(file.mimetype)}`,
      ),
    ]);
    const stream = file.createReadStream();
    // The parser marks an over-limit file with 'limit' and stops feeding it: fail now rather than forward it.
    stream.once('limit', () => stream.destroy(uploadFailure({ status: 413 }, maxBytes)));
    const reclaim = reclaimUploadBuffers();
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      reclaim(chunk.length);
      yield chunk;
    }
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: body() };
}
