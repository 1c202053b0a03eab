// A deleted account's media (issue #15): what media does with AccountDeleted, against a real MariaDB and the disk
// blob store (through the BlobStore port, as GridFS would be).
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { GraphQLError } from 'graphql';
import type { FileUpload } from 'graphql-upload-minimal';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, openDatabase, type AccountDeleted, type Pool, type Viewer } from '@vidmp3/shared';
import { DiskBlobStore } from '../src/adapters/blob-disk.js';
import { DeletedAccountsRepository } from '../src/adapters/deleted-accounts-repo.js';
import { MediaRepository } from '../src/adapters/media-repo.js';
import { QuotaRepository } from '../src/adapters/quota-repo.js';
import { migrations } from '../src/migrations.js';
import { MediaAccountDeletion } from '../src/services/account-deletion.js';
import { DownloadLinks } from '../src/services/download-links.js';
import { MediaService, type Prober } from '../src/services/media.js';
import { StorageQuotas } from '../src/services/quotas.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_media_deletion_test_${randomBytes(6).toString('hex')}`;
const BATCH = 3;

let pool: Pool;
let dir: string;
let blobs: DiskBlobStore;
let repo: MediaRepository;
let quotas: QuotaRepository;
let service: MediaService;
let deletion: MediaAccountDeletion;

/** Probing is not what this file is about: every file is a 2-second video (or mp3). */
const prober: Prober = {
  video: async () => ({ contentType: 'video/mp4', durationSeconds: 2 }),
  mp3: async () => ({ contentType: 'audio/mpeg', durationSeconds: 2 }),
};

beforeAll(async () => {
  pool = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger: createLogger('test', 'silent') });
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-deletion-'));
  blobs = await DiskBlobStore.open(join(dir, 'blobs'));
  repo = new MediaRepository(pool);
  quotas = new QuotaRepository(pool);
  const tombstones = new DeletedAccountsRepository(pool);
  service = new MediaService(
    repo,
    blobs,
    prober,
    new DownloadLinks(randomBytes(32), 'http://127.0.0.1:1', 60),
    new StorageQuotas(quotas, {
      storageBytes: 10 * 1024 ** 2,
      concurrentUploads: 4,
      reservationTtlMs: 60_000,
      reserveAheadBytes: 1024,
    }),
    { scratchDir: blobs.scratchDir(), maxUploadBytes: 1024 ** 2 },
    tombstones,
  );
  deletion = new MediaAccountDeletion(tombstones, repo, blobs, quotas, createLogger('test', 'silent'), BATCH);
});

afterAll(async () => {
  await pool?.end();
  await blobs?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

const signIn = (): Viewer => ({ userId: randomUUID(), token: 't', expiresAt: new Date(Date.now() + 3600_000) });

const event = (userId: string): AccountDeleted => ({
  type: 'account-deleted',
  eventId: randomUUID(),
  userId,
  at: new Date().toISOString(),
});

/** An upload as graphql-upload hands it over, of the bytes `source` streams. */
const fileUpload = (source: Readable): Promise<FileUpload> =>
  Promise.resolve({
    filename: 'clip.mp4',
    mimetype: 'video/mp4',
    encoding: '7bit',
    fieldName: 'file',
    createReadStream: () => source as never,
  } as FileUpload);

const upload = (viewer: Viewer, bytes = 2048) =>
  service.uploadVideo(viewer, fileUpload(Readable.from([randomBytes(bytes)])));

/** Rows naming the user in each of media's tables that hold user ids. */
async function rowsOf(userId: string): Promise<Record<string, number>> {
  const count = async (sql: string) => {
    const [rows] = await pool.query<RowDataPacket[]>(sql, [userId]);
    return Number(rows[0]?.n);
  };
  return {
    media: await count('SELECT COUNT(*) AS n FROM media WHERE owner_id = ?'),
    storage_reservations: await count('SELECT COUNT(*) AS n FROM storage_reservations WHERE owner_id = ?'),
    quota_owners: await count('SELECT COUNT(*) AS n FROM quota_owners WHERE owner_id = ?'),
  };
}

const nothing = { media: 0, storage_reservations: 0, quota_owners: 0 };

/** The blobs in the store (file names are the keys), scratch files excluded. */
async function blobKeys(): Promise<string[]> {
  return (await readdir(join(dir, 'blobs'), { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile() && !e.name.includes('.'))
    .map((e) => e.name);
}

/** Waits until the user's write in progress holds room for `bytes` (its bytes have reached the meter). */
async function reserved(userId: string, bytes: number): Promise<void> {
  for (const until = Date.now() + 10_000; Date.now() < until; await sleep(20)) {
    const [rows] = await pool.query<RowDataPacket[]>(
      'SELECT COALESCE(SUM(reserved_bytes), 0) AS n FROM storage_reservations WHERE owner_id = ?',
      [userId],
    );
    if (Number(rows[0]?.n) >= bytes) return;
  }
  throw new Error(`no reservation of ${bytes} bytes for the upload`);
}

async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  const error = await promise.then(
    () => new Error('expected the call to fail'),
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  return (error as GraphQLError).extensions.code;
}

describe('AccountDeleted in media', () => {
  it('removes every media and blob of the user, batch by batch, deleted media and mp3s included, and nobody else’s', async () => {
    const user = signIn();
    const other = signIn();
    const videos = [];
    for (let i = 0; i < BATCH * 2 + 1; i++) videos.push(await upload(user));
    const mp3 = await service.storeDerivedAudio(
      { jobId: randomUUID(), ownerId: user.userId, sourceMediaId: videos[0]!.id },
      Readable.from([randomBytes(1000)]),
    );
    await service.delete(user, videos[1]!.id); // a deleted media keeps its row
    const theirs = await upload(other);
    // A reservation of a write of the user's (its replica died; it has not expired yet).
    await quotas.reserve({
      id: randomUUID(),
      ownerId: user.userId,
      kind: 'UPLOAD',
      neededBytes: 10,
      aheadBytes: 0,
      storageLimitBytes: 10 ** 9,
      concurrentUploadsLimit: 10,
      ttlMs: 60_000,
    });
    expect(await rowsOf(user.userId)).toEqual({ media: videos.length + 1, storage_reservations: 1, quota_owners: 1 });

    expect(await deletion.accountDeleted(event(user.userId))).toBe(`${videos.length + 1} media removed`);

    expect(await rowsOf(user.userId)).toEqual(nothing);
    expect(await blobKeys()).not.toContain(mp3.media.id);
    for (const video of videos) expect(await blobKeys()).not.toContain(video.id);
    expect(await blobKeys()).toContain(theirs.id);
    expect(await service.get(other, theirs.id)).toMatchObject({ id: theirs.id });
    expect(await rowsOf(other.userId)).toMatchObject({ media: 1, quota_owners: 1 });
  });

  it('is idempotent: a redelivered event finds nothing to do', async () => {
    const user = signIn();
    await upload(user);
    const deleted = event(user.userId);
    expect(await deletion.accountDeleted(deleted)).toBe('1 media removed');
    expect(await deletion.accountDeleted(deleted)).toBe('nothing left');
    expect(await rowsOf(user.userId)).toEqual(nothing);
  });

  it('refuses uploads and job outputs of a deleted account with UNAUTHENTICATED, keeping nothing', async () => {
    const user = signIn();
    const video = await upload(user);
    await deletion.accountDeleted(event(user.userId));
    const before = await blobKeys();
    expect(await codeOf(upload(user))).toBe('UNAUTHENTICATED');
    expect(
      await codeOf(
        service.storeDerivedAudio(
          { jobId: randomUUID(), ownerId: user.userId, sourceMediaId: video.id },
          Readable.from([randomBytes(100)]),
        ),
      ),
    ).toBe('UNAUTHENTICATED');
    expect(await rowsOf(user.userId)).toEqual(nothing);
    expect(await blobKeys()).toEqual(before);
  });

  it('stops an upload still streaming when the account goes, at its next reservation, and keeps nothing of it', async () => {
    const user = signIn();
    const source = new PassThrough();
    const uploading = service.uploadVideo(user, fileUpload(source));
    source.write(randomBytes(512)); // within the first reservation (1 KiB ahead)
    await reserved(user.userId, 512);
    await deletion.accountDeleted(event(user.userId));
    source.end(randomBytes(4096)); // past it: more room is asked for, and refused
    expect(await codeOf(uploading)).toBe('UNAUTHENTICATED');
    expect(await rowsOf(user.userId)).toEqual(nothing);
  });

  it('removes an upload that completes after the account was deleted', async () => {
    const user = signIn();
    const source = new PassThrough();
    const uploading = service.uploadVideo(user, fileUpload(source));
    source.write(randomBytes(300)); // every byte of it, reserved before the deletion
    await reserved(user.userId, 300);
    const before = await blobKeys();
    await deletion.accountDeleted(event(user.userId));
    source.end();
    expect(await codeOf(uploading)).toBe('UNAUTHENTICATED');
    expect(await rowsOf(user.userId)).toEqual(nothing);
    expect(await blobKeys()).toEqual(before);
  });
});
