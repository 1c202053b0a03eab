import { createReadStream } from 'node:fs';
import { lstat, unlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  GridFSBucket,
  MongoClient,
  MongoServerError,
  MongoServerSelectionError,
  type Collection,
  type Db,
  type GridFSBucketWriteStream,
  type ObjectId,
} from 'mongodb';
import { DependencyError } from '@vidmp3/shared';
import {
  BlobExistsError,
  BlobNotFoundError,
  assertRangeWithin,
  assertValidKey,
  type BlobStore,
  type ByteRange,
} from './blob-store.js';

const DEFAULT_DATABASE = 'vidmp3_media';
const DUPLICATE_KEY = 11000;
// A put whose process died keeps its reservation; MongoDB's TTL monitor frees the key after this long.
// Far above any upload's duration, and keys are fresh UUIDs, so nobody waits on it in practice.
const RESERVATION_TTL_SECONDS = 24 * 60 * 60;
const PING_TIMEOUT_MS = 2_000;
const IN_FLIGHT_WAIT_MS = 10_000;

/** The GridFS files document, as this store writes it (the blob key is the file's _id). */
interface FileDoc {
  _id: string;
  length: number;
  chunkSize: number;
  uploadDate: Date;
  filename: string;
}
interface ChunkDoc {
  files_id: string;
  n: number;
}
/** One per put in progress: fences the key so that a second put cannot touch the first one's chunks. */
interface ReservationDoc {
  _id: string;
  startedAt: Date;
}

/**
 * Blobs in a MongoDB GridFS bucket, one file per key with the key as its _id.
 *
 * Why reservations: chunks are tied to their file only by `files_id`, and a failed upload is cleaned up by
 * deleting every chunk with that id. Were two puts for one key allowed to overlap, the loser's cleanup
 * would delete the winner's chunks. A reservation document (unique _id = key) makes puts for one key
 * exclusive across every media replica, so whatever sits under a reserved key belongs to its holder.
 */
export class GridFsBlobStore implements BlobStore {
  readonly kind = 'gridfs' as const;
  private readonly bucket: GridFSBucket;
  private readonly files: Collection<FileDoc>;
  private readonly chunks: Collection<ChunkDoc>;
  private readonly reservations: Collection<ReservationDoc>;

  private constructor(
    private readonly client: MongoClient,
    private readonly db: Db,
    bucketName: string,
  ) {
    this.bucket = new GridFSBucket(db, { bucketName });
    this.files = db.collection<FileDoc>(`${bucketName}.files`);
    this.chunks = db.collection<ChunkDoc>(`${bucketName}.chunks`);
    this.reservations = db.collection<ReservationDoc>(`${bucketName}.reservations`);
  }

  /**
   * Connects and makes sure the bucket's indexes exist; the database comes from the URL's path. No server to
   * be found there is a DependencyError (one line at start, naming MongoDB, no credentials, no stack).
   */
  static async connect(url: string, bucketName = 'blobs'): Promise<GridFsBlobStore> {
    const client = new MongoClient(url);
    try {
      await client.connect();
      const store = new GridFsBlobStore(client, client.db(mongoDatabaseName(url)), bucketName);
      await store.ensureIndexes();
      return store;
    } catch (err) {
      await client.close();
      // The driver reports an unreachable server (refused, hung up, not MongoDB) only as a failed server
      // selection after serverSelectionTimeoutMS, never with the socket's error code connectTo() looks for.
      if (err instanceof MongoServerSelectionError) throw new DependencyError('MongoDB', mongoAddress(url), err);
      throw err;
    }
  }

  async put(key: string, source: Readable, signal?: AbortSignal): Promise<{ byteSize: number }> {
    try {
      assertValidKey(key);
      await this.reserve(key);
    } catch (err) {
      // put owns the source: a caller's request stream must not stay paused after a refusal.
      source.destroy();
      throw err;
    }
    try {
      // Checked under the reservation: a put that finished just before ours took it is seen here.
      if (await this.exists(key)) throw new BlobExistsError(key);
      // Chunks without a file under a key we hold can only be what a crashed put left; they would also
      // trip the unique (files_id, n) index on our first chunk.
      await this.chunks.deleteMany({ files_id: key });
    } catch (err) {
      source.destroy();
      await this.release(key);
      throw err;
    }
    const upload = this.bucket.openUploadStreamWithId(gridId(key), key);
    try {
      await pipeline(source, upload, { signal });
      return { byteSize: upload.length };
    } catch (err) {
      await this.discard(key, upload);
      throw err;
    } finally {
      await this.release(key);
    }
  }

  async adopt(key: string, localPath: string): Promise<{ byteSize: number }> {
    assertValidKey(key);
    const info = await lstat(localPath);
    if (!info.isFile()) throw new Error(`adopt needs a regular file, got ${localPath}`);
    const stored = await this.put(key, createReadStream(localPath));
    try {
      await unlink(localPath);
    } catch (err) {
      // "Moved" means gone from where it was; take the blob back so the caller sees one consistent failure.
      try {
        await this.delete(key);
      } catch {
        // The unlink failure is the one to report; a MongoDB failure here would only hide it.
      }
      throw err;
    }
    return stored;
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    assertValidKey(key);
    // Looked up first so that a missing blob is a rejected promise; the download stream would only report
    // it later, as a stream error.
    const file = await this.files.findOne({ _id: key }, { projection: { length: 1 } });
    if (!file) throw new BlobNotFoundError(key);
    if (!range) return this.bucket.openDownloadStream(gridId(key));
    assertRangeWithin(range, file.length);
    // GridFS's `end` is exclusive; ours is inclusive, as in HTTP.
    return this.bucket.openDownloadStream(gridId(key), { start: range.start, end: range.end + 1 });
  }

  async stat(key: string): Promise<{ byteSize: number } | null> {
    assertValidKey(key);
    const file = await this.files.findOne({ _id: key }, { projection: { length: 1 } });
    return file ? { byteSize: file.length } : null;
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    // The same two steps as GridFSBucket.delete, which however throws "File not found" for a missing file
    // (recognisable only by its message). Files document first: from then on readers see nothing.
    await this.files.deleteOne({ _id: key });
    await this.chunks.deleteMany({ files_id: key });
  }

  async ping(): Promise<boolean> {
    try {
      // Bounded: /readyz must answer quickly, and server selection alone waits 30 s by default.
      await this.db.command({ ping: 1 }, { signal: AbortSignal.timeout(PING_TIMEOUT_MS) });
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  private async ensureIndexes(): Promise<void> {
    // The driver creates the GridFS indexes lazily on the first upload and swallows a failure to do so;
    // the unique chunk index is what stops two chunks claiming one position, so make sure of it up front.
    await this.files.createIndex({ filename: 1, uploadDate: 1 });
    await this.chunks.createIndex({ files_id: 1, n: 1 }, { unique: true });
    await this.reservations.createIndex({ startedAt: 1 }, { expireAfterSeconds: RESERVATION_TTL_SECONDS });
  }

  private async exists(key: string): Promise<boolean> {
    return (await this.files.countDocuments({ _id: key }, { limit: 1 })) > 0;
  }

  private async reserve(key: string): Promise<void> {
    // Fail before reading a byte when the blob is plainly there: the source may be a large upload.
    if (await this.exists(key)) throw new BlobExistsError(key);
    try {
      await this.reservations.insertOne({ _id: key, startedAt: new Date() });
    } catch (err) {
      if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) throw new BlobExistsError(key);
      throw err;
    }
  }

  private async release(key: string): Promise<void> {
    try {
      await this.reservations.deleteOne({ _id: key });
    } catch {
      // Harmless if it stays: after a success the key is taken anyway, after a failure the TTL frees it,
      // and the error that matters to the caller (if any) is already on its way up.
    }
  }

  /** Removes every trace of a failed upload; we hold the reservation, so everything under `key` is ours. */
  private async discard(key: string, upload: GridFSBucketWriteStream): Promise<void> {
    try {
      await settle(upload);
      // abort() puts the stream in its aborted state (no remnant chunk may follow) and deletes the chunks.
      // It refuses once the stream has ended, i.e. when the files-document insert itself failed.
      if (!upload.state.streamEnd && !upload.state.aborted) await upload.abort();
      // That insert may have been applied even though it reported an error (a lost reply), and abort() is
      // not always allowed: sweep both collections ourselves.
      await this.files.deleteOne({ _id: key });
      await this.chunks.deleteMany({ files_id: key });
    } catch {
      // MongoDB is failing us; the upload's own error is the one to report. No files document means nothing
      // is visible, and orphan chunks under this key are swept by the next put that reserves it.
    }
  }
}

/**
 * Waits for chunk inserts already sent to the server. pipeline() destroys the upload stream on failure
 * without waiting for them, and a chunk landing after our sweep would be left behind as an orphan.
 * The driver counts outstanding inserts and decrements only on success; a failed insert sets `errored`.
 */
async function settle(upload: GridFSBucketWriteStream): Promise<void> {
  const deadline = Date.now() + IN_FLIGHT_WAIT_MS;
  while (upload.state.outstandingRequests > 0 && !upload.state.errored && Date.now() < deadline) {
    await sleep(10);
  }
}

/** The database named by the connection string's path; the driver itself would fall back to 'test'. */
export function mongoDatabaseName(url: string): string {
  const path = /^mongodb(?:\+srv)?:\/\/[^/?#]*\/([^?#]*)/.exec(url)?.[1];
  return path ? decodeURIComponent(path) : DEFAULT_DATABASE;
}

/** The connection string's scheme and hosts, without credentials, database or options: for messages. */
export function mongoAddress(url: string): string {
  const parts = /^(mongodb(?:\+srv)?:\/\/)(?:[^@/?#]*@)?([^/?#]*)/.exec(url);
  return parts ? `${parts[1]}${parts[2]}` : '(invalid url)';
}

// GridFS accepts any BSON value as a file id (the GridFS spec says so and the driver passes it through);
// only the driver's typings narrow it to ObjectId. Our ids are the blob keys.
function gridId(key: string): ObjectId {
  return key as unknown as ObjectId;
}
