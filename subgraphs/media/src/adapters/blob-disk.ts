import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { access, link, lstat, mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BlobExistsError,
  BlobNotFoundError,
  assertRangeWithin,
  assertValidKey,
  type BlobStore,
  type ByteRange,
} from './blob-store.js';

/** Temp files untouched this long are a crashed process's left-overs (see `sweepTemp`). */
export const TEMP_MAX_AGE_MS = 25 * 3_600_000;
const TEMP_SWEEP_EVERY_MS = 3_600_000;

// Filesystems that cannot hard-link (some FUSE, SMB and vfat mounts) answer with one of these.
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Blobs as files under one root: `<root>/<first 2 chars of key>/<key>`, written into `<root>/.tmp/` and
 * published with a hard link, so a blob appears complete or not at all and never replaces another.
 */
export class DiskBlobStore implements BlobStore {
  readonly kind = 'disk' as const;
  private sweeper: NodeJS.Timeout | undefined;

  private constructor(
    private readonly root: string,
    private readonly tmp: string,
  ) {}

  static async open(root: string): Promise<DiskBlobStore> {
    const absolute = path.resolve(root);
    // The temp dir lives inside the root so that publishing a finished file is a same-filesystem link.
    const tmp = path.join(absolute, '.tmp');
    await mkdir(tmp, { recursive: true });
    const store = new DiskBlobStore(absolute, tmp);
    await store.sweepTemp();
    store.sweeper = setInterval(() => void store.sweepTemp(), TEMP_SWEEP_EVERY_MS).unref();
    return store;
  }

  /**
   * Removes temp files a crashed process left (they are removed on every failure path otherwise): those
   * untouched for longer than any upload may idle (UPLOAD_IDLE_TIMEOUT_SECONDS is at most a day), so never
   * one a running put or upload still writes. Returns the names removed; a failure waits for the next sweep.
   */
  async sweepTemp(now = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await readdir(this.tmp).catch(() => [])) {
      const file = path.join(this.tmp, name);
      const info = await lstat(file).catch(() => undefined);
      if (!info || now - info.mtimeMs <= TEMP_MAX_AGE_MS) continue;
      await rm(file, { recursive: true, force: true }).then(
        () => removed.push(name),
        () => undefined,
      );
    }
    return removed;
  }

  /** Where callers may write uploads so that `adopt` is a rename, not a copy. */
  scratchDir(): string {
    return this.tmp;
  }

  async put(key: string, source: Readable, signal?: AbortSignal): Promise<{ byteSize: number }> {
    const temp = this.tempPath();
    try {
      const target = this.pathOf(key);
      // Refuse before reading a byte: the source may be a multi-gigabyte upload still arriving.
      if (await exists(target)) throw new BlobExistsError(key);
      const byteSize = await writeNewFile(temp, source, signal);
      await this.publish(temp, target, key);
      return { byteSize };
    } catch (err) {
      // put owns the source: a caller's request stream must not stay paused after a refusal.
      source.destroy();
      await removeQuietly(temp);
      throw err;
    }
  }

  async adopt(key: string, localPath: string): Promise<{ byteSize: number }> {
    const target = this.pathOf(key);
    // lstat, not stat: link() would hard-link a symlink itself, and the blob would then point anywhere.
    const info = await lstat(localPath);
    if (!info.isFile()) throw new Error(`adopt needs a regular file, got ${localPath}`);
    if (await exists(target)) throw new BlobExistsError(key);
    try {
      await this.publish(localPath, target, key);
      return { byteSize: info.size };
    } catch (err) {
      if (errno(err) !== 'EXDEV') throw err;
    }
    // Another filesystem (a SCRATCH_DIR on tmpfs, say): copy into our temp dir first, so that the blob still
    // appears in one step; the local file goes only once the blob is in place.
    const temp = this.tempPath();
    let byteSize: number;
    try {
      byteSize = await writeNewFile(temp, createReadStream(localPath));
      await this.publish(temp, target, key);
    } catch (err) {
      await removeQuietly(temp);
      throw err;
    }
    try {
      await unlink(localPath);
    } catch (err) {
      // "Moved" means gone from where it was; undo so the caller sees one consistent failure.
      await removeQuietly(target);
      throw err;
    }
    return { byteSize };
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const file = this.pathOf(key);
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      if (errno(err) === 'ENOENT') throw new BlobNotFoundError(key);
      throw err;
    }
    try {
      const { size } = await handle.stat();
      if (range) assertRangeWithin(range, size);
      // Streaming from the handle already open: a delete that lands now removes the name, not these bytes.
      return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async stat(key: string): Promise<{ byteSize: number } | null> {
    try {
      const info = await stat(this.pathOf(key));
      return { byteSize: info.size };
    } catch (err) {
      if (errno(err) === 'ENOENT') return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.pathOf(key));
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
    }
    // Empty shard directories stay: removing one could race with a put that just created it.
  }

  async ping(): Promise<boolean> {
    try {
      await access(this.root, constants.R_OK | constants.W_OK);
      await access(this.tmp, constants.R_OK | constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    // Nothing else is held open between calls; read streams close themselves when done.
    clearInterval(this.sweeper);
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    return path.join(this.root, key.slice(0, 2), key);
  }

  private tempPath(): string {
    return path.join(this.tmp, `put-${randomUUID()}.part`);
  }

  /** Gives the finished file `from` the name `target`, never replacing an existing blob; `from` is gone after. */
  private async publish(from: string, target: string, key: string): Promise<void> {
    await mkdir(path.dirname(target), { recursive: true });
    try {
      // link() fails with EEXIST instead of replacing (rename would silently overwrite): of two puts racing
      // for one key, exactly one wins.
      await link(from, target);
    } catch (err) {
      const code = errno(err);
      if (code === 'EEXIST') throw new BlobExistsError(key);
      if (code === undefined || !LINK_UNSUPPORTED.has(code)) throw err;
      // No hard links here: check, then rename. Only a put racing for the same key between the two calls
      // could be overwritten, and keys are fresh UUIDs.
      if (await exists(target)) throw new BlobExistsError(key);
      await rename(from, target);
      return;
    }
    try {
      await unlink(from);
    } catch (err) {
      // Failing with the blob visible would break "after a failure nothing is visible": take it back.
      await removeQuietly(target);
      throw err;
    }
  }
}

/** Streams `source` into a file that must not exist yet, flushed to disk; resolves with the byte count. */
async function writeNewFile(file: string, source: Readable, signal?: AbortSignal): Promise<number> {
  // `flush`: fsync before close, so a crash cannot leave a published blob with missing bytes. (Not a
  // FileHandle stream with autoClose off: FileHandle.close() then waits forever for the stream's release.)
  const sink = createWriteStream(file, { flags: 'wx', flush: true });
  try {
    // Waited for here rather than left to the stream: an open still pending when a failure's cleanup runs
    // would create the temp file after it was removed.
    await once(sink, 'ready');
  } catch (err) {
    source.destroy();
    throw err;
  }
  try {
    await pipeline(source, sink, { signal });
    return sink.bytesWritten;
  } finally {
    // pipeline() settles on failure without waiting for the file to be closed; the cleanup after us must
    // not race the last write.
    if (!sink.closed) await new Promise<void>((resolve) => sink.once('close', () => resolve()));
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
}

/** Cleanup on a failure path: the error being handled is what the caller must see, not this one's. */
async function removeQuietly(file: string): Promise<void> {
  try {
    await rm(file, { force: true });
  } catch {
    // Only permission or I/O errors reach here; the original failure is already on its way up.
  }
}

function errno(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}
