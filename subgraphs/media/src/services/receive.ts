import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, reclaimUploadBuffers, uploadFailure, userError } from '@vidmp3/shared';

export interface Received {
  byteSize: number;
  sha256: string;
}

/** Where the received bytes must also fit: the owner's storage quota (see StorageQuotas). */
export interface ByteAllowance {
  covers(totalBytes: number): boolean;
  ensure(totalBytes: number): Promise<void>;
}

/**
 * Counts and hashes bytes on their way through, and fails as soon as they pass the size limit or the
 * allowance refuses them (the chunk that would go over is never written).
 */
class Meter extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');
  private readonly reclaim = reclaimUploadBuffers();

  constructor(
    private readonly limit: number,
    private readonly allowance?: ByteAllowance,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.reclaim(chunk.length);
    if (this.bytes > this.limit) {
      done(tooLarge(this.limit));
      return;
    }
    const pass = () => {
      this.hash.update(chunk);
      done(null, chunk);
    };
    if (!this.allowance || this.allowance.covers(this.bytes)) {
      pass();
      return;
    }
    // Holding the callback holds the stream: nothing more is read until the quota has answered.
    this.allowance
      .ensure(this.bytes)
      .then(pass, (err: unknown) => done(err instanceof Error ? err : new Error(String(err))));
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

const tooLarge = (limit: number) =>
  userError(ErrorCode.PAYLOAD_TOO_LARGE, `The file is larger than the limit of ${formatBytes(limit)}`, {
    maxBytes: limit,
  });

/** A size for messages: `2 GiB`, `1.5 MiB`, `293.0 KiB`, `512 bytes`. */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (n >= size) return `${(n / size).toFixed(n % size ? 1 : 0)} ${unit}`;
  }
  return `${n} bytes`;
}

/**
 * What the file may buffer while a write is in flight; buffered chunks go to disk together in one writev. With
 * Node's default (16 KiB, less than one 64 KiB socket read) every chunk was its own write, handed to the thread
 * pool and back: ~16,000 round trips per GiB, which cost more CPU than hashing it (measured with perf, issue #11).
 * 4 MiB rather than 1: a 1 GiB upload through the gateway took 3.12 s instead of 3.26 (mean of 8 each, alternated;
 * media's CPU 2.68 s instead of 2.73). It bounds what one upload holds while the disk lags.
 */
const WRITE_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Streams `source` into a new file at `path`, counting and hashing as it goes; memory stays flat whatever
 * the size. The caller removes `path` on failure. Errors a client caused become user errors: over the limit
 * → PAYLOAD_TOO_LARGE; over the owner's storage quota → QUOTA_EXCEEDED; a cut-off or malformed upload →
 * BAD_USER_INPUT.
 */
export async function receiveToFile(
  source: Readable,
  path: string,
  limit: number,
  allowance?: ByteAllowance,
): Promise<Received> {
  const meter = new Meter(limit, allowance);
  // The multipart parser stops a file at its limit by emitting 'limit' and unpiping its consumers, which
  // would leave this pipeline waiting forever: turn it into the error it is.
  source.once('limit', () => source.destroy(tooLarge(limit)));
  try {
    await pipeline(source, meter, createWriteStream(path, { flags: 'wx', highWaterMark: WRITE_BATCH_BYTES }));
  } catch (err) {
    if ((err as { extensions?: { code?: string } }).extensions?.code) throw err; // our meter's own verdict
    if ((err as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      throw userError(ErrorCode.BAD_USER_INPUT, 'The upload was interrupted before the file was complete');
    }
    throw uploadFailure(err, limit);
  }
  return { byteSize: meter.bytes, sha256: meter.digest() };
}
