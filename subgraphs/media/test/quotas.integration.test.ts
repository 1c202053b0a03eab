import { randomBytes, randomUUID } from 'node:crypto';
import { GraphQLError } from 'graphql';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger, openDatabase, type Pool } from '@vidmp3/shared';
import { MediaRepository } from '../src/adapters/media-repo.js';
import { QuotaRepository } from '../src/adapters/quota-repo.js';
import { migrations } from '../src/migrations.js';
import { StorageQuotas, type QuotaLimits } from '../src/services/quotas.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_media_quota_test_${randomBytes(6).toString('hex')}`;
const LIMIT = 1_000_000;

let pool: Pool;
let media: MediaRepository;

beforeAll(async () => {
  pool = await openDatabase({
    url: `${SERVER}/${DATABASE}`,
    migrations,
    logger: createLogger('test', 'silent'),
    connectionLimit: 8,
  });
  media = new MediaRepository(pool);
});
afterAll(async () => {
  await pool?.end();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

/** One media replica's view of the quotas; several over one pool stand for several replicas. */
const replica = (limits: Partial<QuotaLimits> = {}) =>
  new StorageQuotas(new QuotaRepository(pool), {
    storageBytes: LIMIT,
    concurrentUploads: 2,
    reservationTtlMs: 60_000,
    reserveAheadBytes: 64 * 1024,
    ...limits,
  });

async function storedMedia(ownerId: string, byteSize: number): Promise<string> {
  const id = randomUUID();
  await media.insert({
    id,
    ownerId,
    kind: 'VIDEO',
    filename: 'x.mp4',
    contentType: 'video/mp4',
    byteSize,
    sha256: '0'.repeat(64),
    durationSeconds: 3,
    sourceMediaId: null,
    jobId: null,
    createdAt: new Date(),
  });
  return id;
}

async function failure(promise: Promise<unknown>): Promise<GraphQLError> {
  const err = await promise.then(
    () => new Error('expected a refusal'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GraphQLError);
  return err as GraphQLError;
}

describe('storage quota decisions (real MariaDB)', () => {
  it('refuses an upload before its first byte when the owner is already at the limit', async () => {
    const owner = randomUUID();
    await storedMedia(owner, LIMIT);
    const err = await failure(replica().startUpload(owner));
    expect(err.extensions).toMatchObject({
      code: 'QUOTA_EXCEEDED',
      quota: 'storageBytes',
      limit: LIMIT,
      used: LIMIT,
    });
  });

  it('refuses the first byte past the limit while streaming, and nothing before it', async () => {
    const owner = randomUUID();
    await storedMedia(owner, LIMIT - 1000);
    const allowance = await replica().startUpload(owner);
    await allowance.ensure(1000);
    const err = await failure(allowance.ensure(1001));
    expect(err.extensions).toMatchObject({ quota: 'storageBytes', used: LIMIT - 1000 });
    await allowance.release();
  });

  it('never lets parallel writes on several replicas take more than the limit together', async () => {
    const owner = randomUUID();
    const replicas = [replica(), replica(), replica(), replica()];
    const writes = await Promise.all(replicas.map((r) => r.startOutput(owner)));
    // Each write tries to take 400 kB in 4 kB steps; the quota has room for 1 MB.
    const taken = await Promise.all(
      writes.map(async (w) => {
        let bytes = 0;
        try {
          for (let next = 4096; next <= 400_000; next += 4096) {
            await w.ensure(next);
            bytes = next;
          }
        } catch (err) {
          expect((err as GraphQLError).extensions.code).toBe('QUOTA_EXCEEDED');
        }
        return bytes;
      }),
    );
    const total = taken.reduce((a, b) => a + b, 0);
    expect(total).toBeLessThanOrEqual(LIMIT);
    // …and room is not wasted: what others hold beyond their bytes is at most a step and the read-ahead each.
    expect(total).toBeGreaterThan(LIMIT - writes.length * (64 * 1024 + 4096));
    await Promise.all(writes.map((w) => w.release()));
  });

  it('grants simultaneous requests for room one after another, never more than fits', async () => {
    const owner = randomUUID();
    const writes = await Promise.all(Array.from({ length: 8 }, () => replica().startOutput(owner)));
    const results = await Promise.allSettled(writes.map((w) => w.ensure(300_000)));
    // 3 × 300 kB fit in 1 MB; the read-ahead one holds beyond its bytes may leave room for only 2.
    const granted = results.filter((r) => r.status === 'fulfilled').length;
    expect(granted).toBeGreaterThanOrEqual(2);
    expect(granted).toBeLessThanOrEqual(3);
    await Promise.all(writes.map((w) => w.release()));
  });

  it('counts uploads in progress across replicas, and forgets one whose replica died once it expires', async () => {
    const owner = randomUUID();
    const [a, b] = [replica(), replica()];
    const first = await a.startUpload(owner);
    const second = await b.startUpload(owner);
    const err = await failure(a.startUpload(owner));
    expect(err.extensions).toMatchObject({ quota: 'concurrentUploads', limit: 2, used: 2 });
    expect((await a.usage(owner)).uploadsInProgress).toBe(2);

    // Replica b dies: its reservation is no longer kept alive. Its expiry time passes (moved, not waited for).
    await second.release().catch(() => undefined);
    await pool.execute(
      `INSERT INTO storage_reservations (id, owner_id, kind, reserved_bytes, expires_at)
         VALUES (?, ?, 'UPLOAD', 500000, NOW(3) - INTERVAL 1 SECOND)`,
      [randomUUID(), owner],
    );
    expect((await a.usage(owner)).uploadsInProgress).toBe(1);
    const third = await a.startUpload(owner);
    await Promise.all([first.release(), third.release()]);
    expect((await a.usage(owner)).uploadsInProgress).toBe(0);
  });

  it('frees a deleted media’s bytes', async () => {
    const owner = randomUUID();
    const id = await storedMedia(owner, LIMIT);
    await failure(replica().startUpload(owner));
    await media.markDeleted(id);
    const allowance = await replica().startUpload(owner);
    await allowance.ensure(LIMIT);
    await allowance.release();
    expect(await replica().usage(owner)).toMatchObject({ storageBytes: 0, storageLimitBytes: LIMIT });
  });

  it('asks for more room in the background once half of the read-ahead is used, never past the limit', async () => {
    const owner = randomUUID();
    await storedMedia(owner, LIMIT - 200_000);
    const allowance = await replica().startUpload(owner);
    await allowance.ensure(1000); // holds 1000 bytes and 64 KiB ahead
    const held = 1000 + 64 * 1024;
    expect(allowance.covers(held - 1000)).toBe(true); // past half of the read-ahead: more is asked for
    await vi.waitFor(async () => expect(await reservedBy(owner)).toBeGreaterThan(held));
    // The stream goes on without waiting: those bytes are held already.
    expect(allowance.covers(held + 1000)).toBe(true);
    // Near the limit the read-ahead shrinks (half of what is left), and the first byte too many is still refused.
    for (let total = held + 1000; total <= 200_000; total += 4096) {
      if (!allowance.covers(total)) await allowance.ensure(total);
    }
    expect(await reservedBy(owner)).toBeLessThanOrEqual(200_000);
    await failure(allowance.ensure(200_001));
    await allowance.release();
    expect(await reservedBy(owner)).toBe(0);
  });

  it('leaves no reservation behind when released while asking for more room', async () => {
    const owner = randomUUID();
    const allowance = await replica().startUpload(owner);
    await allowance.ensure(1000);
    allowance.covers(60_000); // starts a read-ahead, not awaited
    await allowance.release();
    expect(await reservedBy(owner)).toBe(0);
  });
});

/** The bytes an owner's writes hold right now. */
async function reservedBy(ownerId: string): Promise<number> {
  const [rows] = await pool.query<RowDataPacket[]>(
    'SELECT COALESCE(SUM(reserved_bytes), 0) AS bytes FROM storage_reservations WHERE owner_id = ?',
    [ownerId],
  );
  return Number(rows[0]?.bytes ?? 0);
}
