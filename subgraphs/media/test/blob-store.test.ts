import { randomFillSync, randomUUID } from 'node:crypto';
import { access, mkdir, mkdtemp, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { MongoClient, type Db } from 'mongodb';
import { afterAll, describe, expect, it } from 'vitest';
import { DiskBlobStore, TEMP_MAX_AGE_MS } from '../src/adapters/blob-disk.js';
import { GridFsBlobStore, mongoDatabaseName } from '../src/adapters/blob-gridfs.js';
import { blobStoreContract } from './blob-store.contract.js';

// Run after each suite's own afterAll has closed its store.
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function freshRoot(): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'vidmp3-blobs-'));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  return root;
}

blobStoreContract('Disk blob store', async () => DiskBlobStore.open(await freshRoot()), {
  // Every put writes into the scratch dir first: after a failure nothing may remain there.
  leftovers: (store) => readdir(store.scratchDir()),
});

describe('Disk blob store, on the filesystem', () => {
  it('removes the temp files a crashed process left when it opens, and keeps those that may still be written', async () => {
    const root = await freshRoot();
    await mkdir(path.join(root, '.tmp'));
    const crashed = path.join(root, '.tmp', 'put-crashed.part');
    await writeFile(crashed, 'half a blob');
    const longAgo = new Date(Date.now() - TEMP_MAX_AGE_MS - 60_000);
    await utimes(crashed, longAgo, longAgo);
    await writeFile(path.join(root, '.tmp', 'upload-arriving'), 'bytes so far');

    const store = await DiskBlobStore.open(root);
    expect(await readdir(store.scratchDir())).toEqual(['upload-arriving']);
    // And on its timer, the same way.
    expect(await store.sweepTemp(Date.now() + TEMP_MAX_AGE_MS + 60_000)).toEqual(['upload-arriving']);
    await store.close();
  });

  it('keeps blobs under <root>/<first two characters>/<key>, nothing in the scratch dir', async () => {
    const root = await freshRoot();
    const store = await DiskBlobStore.open(root);
    const key = randomUUID();

    await store.put(key, bytes(1_000));

    expect((await stat(path.join(root, key.slice(0, 2), key))).size).toBe(1_000);
    expect(store.scratchDir()).toBe(path.join(root, '.tmp'));
    expect(await readdir(store.scratchDir())).toEqual([]);
  });

  it('adopts a file from its scratch dir by renaming it (same inode, no copy)', async () => {
    const root = await freshRoot();
    const store = await DiskBlobStore.open(root);
    const key = randomUUID();
    const upload = path.join(store.scratchDir(), 'upload-1');
    await writeFile(upload, randomFillSync(Buffer.alloc(4_096)));
    const { ino } = await stat(upload);

    expect(await store.adopt(key, upload)).toEqual({ byteSize: 4_096 });

    expect((await stat(path.join(root, key.slice(0, 2), key))).ino).toBe(ino);
    expect(await readdir(store.scratchDir())).toEqual([]);
  });

  // /dev/shm is a tmpfs on Linux, so a file there is on another filesystem than the store under /tmp.
  const otherFs = '/dev/shm';
  const crossDevice = async (root: string): Promise<boolean> => {
    try {
      return (await stat(otherFs)).dev !== (await stat(root)).dev;
    } catch {
      return false;
    }
  };

  it('adopts a file from another filesystem by copying it, then removes the original', async (ctx) => {
    const root = await freshRoot();
    if (!(await crossDevice(root))) ctx.skip(`needs ${otherFs} on another filesystem than ${os.tmpdir()}`);
    const store = await DiskBlobStore.open(root);
    const key = randomUUID();
    const upload = path.join(otherFs, `vidmp3-adopt-${randomUUID()}`);
    await writeFile(upload, randomFillSync(Buffer.alloc(70_000)));
    cleanups.push(() => rm(upload, { force: true }));

    expect(await store.adopt(key, upload)).toEqual({ byteSize: 70_000 });

    await expect(access(upload)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await store.stat(key)).toEqual({ byteSize: 70_000 });
    expect(await readdir(store.scratchDir())).toEqual([]);
  });

  it('refuses to adopt a symlink, which would otherwise become a link to anywhere', async () => {
    const root = await freshRoot();
    const store = await DiskBlobStore.open(root);
    const link = path.join(store.scratchDir(), 'sneaky');
    await symlink('/etc/hostname', link);

    await expect(store.adopt(randomUUID(), link)).rejects.toThrow('regular file');
    await rm(link);
  });

  it('reports not ready once its root is gone', async () => {
    const root = await freshRoot();
    const store = await DiskBlobStore.open(root);
    await rm(root, { recursive: true });

    expect(await store.ping()).toBe(false);
  });
});

const MONGODB_URL = process.env.MONGODB_URL;
// The test's own view of the bucket, beside the store's: to find leftovers and to drop it afterwards.
let gridfsDb: Db | undefined;
let gridfsBucket = '';

blobStoreContract(
  'GridFS blob store',
  async () => {
    // MONGODB_URL is set whenever this runs (the suite is skipped otherwise).
    const url = MONGODB_URL ?? '';
    // A bucket of its own per run: parallel runs against one server never see each other's blobs.
    const bucket = `blobs_test_${randomUUID().replaceAll('-', '')}`;
    const admin = await new MongoClient(url).connect();
    const db = admin.db(mongoDatabaseName(url));
    gridfsDb = db;
    gridfsBucket = bucket;
    cleanups.push(async () => {
      try {
        for (const suffix of ['files', 'chunks', 'reservations']) await db.dropCollection(`${bucket}.${suffix}`);
      } finally {
        await admin.close();
      }
    });
    return GridFsBlobStore.connect(url, bucket);
  },
  {
    skip: MONGODB_URL ? undefined : 'set MONGODB_URL to run against a MongoDB server',
    // What a failed put could leave: chunks without a files document, and reservations still held.
    leftovers: async () => {
      if (!gridfsDb) return ['no database handle'];
      const fileIds = await gridfsDb.collection(`${gridfsBucket}.files`).distinct('_id');
      const orphans = await gridfsDb
        .collection(`${gridfsBucket}.chunks`)
        .distinct('files_id', { files_id: { $nin: fileIds } });
      const held = await gridfsDb.collection(`${gridfsBucket}.reservations`).distinct('_id');
      return [
        ...orphans.map((id) => `orphan chunks of ${String(id)}`),
        ...held.map((id) => `reservation ${String(id)}`),
      ];
    },
  },
);

function bytes(n: number): Readable {
  return Readable.from([randomFillSync(Buffer.alloc(n))]);
}
