import type { Readable } from 'node:stream';

/** Inclusive byte range, as in HTTP Range. */
export interface ByteRange {
  start: number;
  end: number;
}

export class BlobNotFoundError extends Error {
  override readonly name = 'BlobNotFoundError';
  constructor(readonly key: string) {
    super(`blob ${key} not found`);
  }
}

/** `put`/`adopt` under a key that already holds a blob (or one being written right now). */
export class BlobExistsError extends Error {
  override readonly name = 'BlobExistsError';
  constructor(readonly key: string) {
    super(`blob ${key} already exists`);
  }
}

/** A key that could name something outside the store (path separators, dots, empty, too long). */
export class InvalidBlobKeyError extends Error {
  override readonly name = 'InvalidBlobKeyError';
  constructor(key: string) {
    // The key may be attacker-shaped: show it JSON-quoted and cut, never raw.
    super(`invalid blob key ${JSON.stringify(key.slice(0, 140))}`);
  }
}

/** A range that does not lie inside the blob. Callers answer HTTP 416 before getting here. */
export class BlobRangeError extends RangeError {
  override readonly name = 'BlobRangeError';
}

export interface BlobStore {
  readonly kind: 'disk' | 'gridfs';
  /** Streams `source` into a new blob; atomic: after any failure (source error, abort signal, store error) nothing is visible under `key` and no partial data is left. Rejects if `key` already exists (BlobExistsError). Resolves with the byte count. put owns `source`: it is consumed, or destroyed when put fails, even before reading it. */
  put(key: string, source: Readable, signal?: AbortSignal): Promise<{ byteSize: number }>;
  /** Moves a finished local file (e.g. an upload already written to scratch space) into the store under `key`: a rename when possible (disk adapter, same filesystem; fall back to copy+unlink on EXDEV), otherwise streamed and the file removed. On failure the local file is left for the caller to remove, and nothing is visible under key. */
  adopt(key: string, localPath: string): Promise<{ byteSize: number }>;
  /** A stream of the whole blob or of a range; BlobNotFoundError when missing (rejected promise, not a stream error). */
  read(key: string, range?: ByteRange): Promise<Readable>;
  stat(key: string): Promise<{ byteSize: number } | null>;
  /** Idempotent: deleting a missing blob is not an error. */
  delete(key: string): Promise<void>;
  /** For /readyz. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

// Keys become file names in the disk adapter: this alphabet has no separators and no dots, so a key can
// never climb out of the root (`..`), hide (`.tmp`) or name a directory.
const KEY = /^[A-Za-z0-9_-]{1,128}$/;

export function assertValidKey(key: string): void {
  if (!KEY.test(key)) throw new InvalidBlobKeyError(key);
}

/** Checks an inclusive range against a blob of `byteSize` bytes (an empty blob has no valid range). */
export function assertRangeWithin(range: ByteRange, byteSize: number): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end >= byteSize) {
    throw new BlobRangeError(`range ${start}-${end} is not inside a blob of ${byteSize} bytes`);
  }
}
