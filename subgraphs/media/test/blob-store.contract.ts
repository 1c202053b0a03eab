import { createHash, randomFillSync, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BlobExistsError,
  BlobNotFoundError,
  BlobRangeError,
  InvalidBlobKeyError,
  type BlobStore,
} from '../src/adapters/blob-store.js';

const MiB = 1024 * 1024;
// Spans several GridFS chunks (255 KiB each) and ends mid-chunk, so ranges cross chunk boundaries.
const GRIDFS_CHUNK = 255 * 1024;

export interface ContractOptions<S extends BlobStore> {
  /** Why this run is skipped; the reason becomes part of the suite's title. */
  skip?: string;
  /** Lists what the store keeps besides its blobs (temp files, orphan chunks): empty after a failed put. */
  leftovers?: (store: S) => Promise<string[]>;
}

/**
 * The behaviour every BlobStore adapter owes the media service. Each adapter's test file calls this with a
 * factory for a fresh, empty store.
 */
export function blobStoreContract<S extends BlobStore>(
  name: string,
  open: () => Promise<S>,
  opts: ContractOptions<S> = {},
): void {
  const title = opts.skip === undefined ? name : `${name} (skipped: ${opts.skip})`;
  // The default reporter only counts skipped tests; say why where a reader of the run will see it.
  if (opts.skip !== undefined) console.warn(title);

  describe.skipIf(opts.skip !== undefined)(title, () => {
    let store: S;
    let localDir: string;

    beforeAll(async () => {
      store = await open();
      localDir = await mkdtemp(path.join(os.tmpdir(), 'vidmp3-adopt-'));
    });

    afterAll(async () => {
      // Either may be missing when beforeAll itself failed; that failure is the one vitest reports.
      if (localDir) await rm(localDir, { recursive: true, force: true });
      if (store) await store.close();
    });

    const leftovers = async (): Promise<string[]> => (opts.leftovers ? opts.leftovers(store) : []);

    it('round-trips a multi-megabyte stream byte for byte', async () => {
      const key = randomUUID();
      const size = 8 * MiB + 12_345;
      const source = generated(size);

      const { byteSize } = await store.put(key, source.stream);

      expect(byteSize).toBe(size);
      expect(await drain(await store.read(key))).toEqual({ byteSize: size, sha256: source.sha256() });
    });

    it('reports the byte size through stat, down to an empty blob', async () => {
      const key = randomUUID();
      const empty = randomUUID();

      await store.put(key, generated(1_000_003).stream);
      expect(await store.put(empty, Readable.from([]))).toEqual({ byteSize: 0 });

      expect(await store.stat(key)).toEqual({ byteSize: 1_000_003 });
      expect(await store.stat(empty)).toEqual({ byteSize: 0 });
      expect(await drain(await store.read(empty))).toEqual({ byteSize: 0, sha256: sha256Hex(Buffer.alloc(0)) });
    });

    it('reads ranges: first byte, middle, last byte, across chunk boundaries and the whole blob', async () => {
      const key = randomUUID();
      const data = randomFillSync(Buffer.alloc(3 * GRIDFS_CHUNK + 777));
      await store.put(key, Readable.from([data]));
      const last = data.length - 1;

      for (const [start, end] of [
        [0, 0],
        [1_000, 2_000],
        [GRIDFS_CHUNK - 1, GRIDFS_CHUNK],
        [GRIDFS_CHUNK, 2 * GRIDFS_CHUNK - 1],
        [500, last - 500],
        [last, last],
        [0, last],
      ] as const) {
        const expected = data.subarray(start, end + 1);
        expect(await drain(await store.read(key, { start, end })), `range ${start}-${end}`).toEqual({
          byteSize: expected.length,
          sha256: sha256Hex(expected),
        });
      }
    });

    it('refuses a range that is not inside the blob', async () => {
      const key = randomUUID();
      await store.put(key, Readable.from([Buffer.alloc(100, 1)]));

      for (const range of [
        { start: 100, end: 100 },
        { start: 0, end: 100 },
        { start: 10, end: 9 },
        { start: -1, end: 5 },
        { start: 0.5, end: 5 },
      ]) {
        await expect(store.read(key, range), JSON.stringify(range)).rejects.toBeInstanceOf(BlobRangeError);
      }
    });

    it('answers null when asked for the size of a missing blob', async () => {
      expect(await store.stat(randomUUID())).toBeNull();
    });

    it('rejects reading a missing blob with BlobNotFoundError, ranged or not', async () => {
      const key = randomUUID();

      await expect(store.read(key)).rejects.toBeInstanceOf(BlobNotFoundError);
      await expect(store.read(key, { start: 0, end: 0 })).rejects.toBeInstanceOf(BlobNotFoundError);
    });

    it('refuses to put under an existing key and keeps the original intact', async () => {
      const key = randomUUID();
      const original = generated(2 * MiB + 1);
      await store.put(key, original.stream);
      const intruder = generated(3 * MiB);

      await expect(store.put(key, intruder.stream)).rejects.toBeInstanceOf(BlobExistsError);

      expect(intruder.stream.destroyed).toBe(true);
      expect(await drain(await store.read(key))).toEqual({ byteSize: 2 * MiB + 1, sha256: original.sha256() });
      expect(await leftovers()).toEqual([]);
    });

    it('lets exactly one of two concurrent puts under one key win, and keeps the winner whole', async () => {
      const key = randomUUID();
      const first = generated(4 * MiB, { chunkSize: 64 * 1024 });
      const second = generated(4 * MiB + 7, { chunkSize: 64 * 1024 });

      const results = await Promise.allSettled([store.put(key, first.stream), store.put(key, second.stream)]);

      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
      expect(won).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected');
      expect(lost?.reason).toBeInstanceOf(BlobExistsError);
      const winner =
        won[0] === 0
          ? { byteSize: 4 * MiB, sha256: first.sha256() }
          : { byteSize: 4 * MiB + 7, sha256: second.sha256() };
      expect(await drain(await store.read(key))).toEqual(winner);
      expect(await leftovers()).toEqual([]);
    });

    it('keeps nothing when the source fails midway', async () => {
      const key = randomUUID();
      const failing = generated(6 * MiB, { failAt: 3 * MiB });

      await expect(store.put(key, failing.stream)).rejects.toThrow('source failed midway');

      expect(await store.stat(key)).toBeNull();
      await expect(store.read(key)).rejects.toBeInstanceOf(BlobNotFoundError);
      expect(await leftovers()).toEqual([]);
    });

    it('keeps nothing when the abort signal fires midway, and lets the key be used afterwards', async () => {
      const key = randomUUID();
      const controller = new AbortController();
      const source = generated(6 * MiB, {
        onProgress: (sent) => {
          if (sent >= 3 * MiB && !controller.signal.aborted) controller.abort();
        },
      });

      await expect(store.put(key, source.stream, controller.signal)).rejects.toMatchObject({ name: 'AbortError' });

      expect(source.stream.destroyed).toBe(true);
      expect(await store.stat(key)).toBeNull();
      expect(await leftovers()).toEqual([]);
      // A failed put must not fence the key off: a retry under it succeeds.
      expect(await store.put(key, generated(10).stream)).toEqual({ byteSize: 10 });
    });

    it('keeps nothing when the signal is already aborted', async () => {
      const key = randomUUID();
      const source = generated(MiB);

      await expect(store.put(key, source.stream, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });

      expect(await store.stat(key)).toBeNull();
      expect(await leftovers()).toEqual([]);
    });

    it('deletes a blob, and deleting it again (or a key never used) is not an error', async () => {
      const key = randomUUID();
      await store.put(key, generated(MiB).stream);

      await store.delete(key);

      expect(await store.stat(key)).toBeNull();
      await expect(store.read(key)).rejects.toBeInstanceOf(BlobNotFoundError);
      await expect(store.delete(key)).resolves.toBeUndefined();
      await expect(store.delete(randomUUID())).resolves.toBeUndefined();
    });

    it('adopts a finished local file: the blob holds its bytes and the local file is gone', async () => {
      const key = randomUUID();
      const file = path.join(localDir, `${randomUUID()}.upload`);
      const source = generated(5 * MiB + 3);
      await pipeline(source.stream, createWriteStream(file));

      expect(await store.adopt(key, file)).toEqual({ byteSize: 5 * MiB + 3 });

      await expect(access(file)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await drain(await store.read(key))).toEqual({ byteSize: 5 * MiB + 3, sha256: source.sha256() });
    });

    it('refuses to adopt under an existing key and leaves both the blob and the local file alone', async () => {
      const key = randomUUID();
      const original = generated(1_000);
      await store.put(key, original.stream);
      const file = path.join(localDir, `${randomUUID()}.upload`);
      await pipeline(generated(2_000).stream, createWriteStream(file));

      await expect(store.adopt(key, file)).rejects.toBeInstanceOf(BlobExistsError);

      await expect(access(file)).resolves.toBeUndefined();
      expect(await drain(await store.read(key))).toEqual({ byteSize: 1_000, sha256: original.sha256() });
      await rm(file);
    });

    it('rejects keys that could name anything outside the store', async () => {
      const file = path.join(localDir, `${randomUUID()}.upload`);
      await pipeline(generated(10).stream, createWriteStream(file));

      for (const key of ['../x', '', 'a/b', '..', '.', '.tmp', 'a\\b', '/etc/passwd', 'x'.repeat(129), 'é', 'a b']) {
        const source = generated(10);
        await expect(store.put(key, source.stream), key).rejects.toBeInstanceOf(InvalidBlobKeyError);
        expect(source.stream.destroyed, key).toBe(true);
        await expect(store.adopt(key, file), key).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.read(key), key).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.stat(key), key).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.delete(key), key).rejects.toBeInstanceOf(InvalidBlobKeyError);
      }
      // A refused adopt leaves the caller's file where it was.
      await expect(access(file)).resolves.toBeUndefined();
      expect(await leftovers()).toEqual([]);
    });

    it('keeps memory flat while storing a 256 MiB stream generated on the fly', { timeout: 180_000 }, async () => {
      const key = randomUUID();
      const size = 256 * MiB;
      const baseline = process.memoryUsage.rss();
      let peak = baseline;
      // Sampled as the bytes are produced: the peak is what matters, not what is left once GC has run.
      const source = generated(size, { onProgress: () => (peak = Math.max(peak, process.memoryUsage.rss())) });

      const { byteSize } = await store.put(key, source.stream);
      peak = Math.max(peak, process.memoryUsage.rss());

      expect(byteSize).toBe(size);
      // A store that buffered the blob would grow by 256 MiB; streaming holds a few chunks at a time.
      expect((peak - baseline) / MiB).toBeLessThan(64);
      await store.delete(key);
    });

    it('answers ping with true', async () => {
      expect(await store.ping()).toBe(true);
    });
  });
}

interface Generated {
  stream: Readable;
  /** The sha256 of every byte produced so far (all of them once the stream has been consumed). */
  sha256: () => string;
}

/**
 * A stream of `byteSize` pseudo-random bytes made on demand, so tests never hold the whole payload; it can
 * fail after `failAt` bytes and reports progress (bytes produced) to `onProgress`.
 */
function generated(
  byteSize: number,
  opts: { chunkSize?: number; failAt?: number; onProgress?: (sent: number) => void } = {},
): Generated {
  const chunkSize = opts.chunkSize ?? MiB;
  const hash = createHash('sha256');
  let sent = 0;
  const stream = new Readable({
    read() {
      if (opts.failAt !== undefined && sent >= opts.failAt) {
        this.destroy(new Error('source failed midway'));
        return;
      }
      if (sent >= byteSize) {
        this.push(null);
        return;
      }
      const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(chunkSize, byteSize - sent)));
      hash.update(chunk);
      sent += chunk.length;
      opts.onProgress?.(sent);
      this.push(chunk);
    },
  });
  return { stream, sha256: () => hash.copy().digest('hex') };
}

/** Consumes a stream, keeping only its length and sha256. */
async function drain(stream: Readable): Promise<{ byteSize: number; sha256: string }> {
  const hash = createHash('sha256');
  let byteSize = 0;
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        byteSize += chunk.length;
        callback();
      },
    }),
  );
  return { byteSize, sha256: hash.digest('hex') };
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
