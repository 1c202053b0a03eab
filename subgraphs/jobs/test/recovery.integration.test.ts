import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConversionRequest, createLogger, openDatabase, Topology, type Pool, type Viewer } from '@vidmp3/shared';
import { JobsRepository, type JobRecord } from '../src/adapters/jobs-repo.js';
import { MediaClient, type MediaFacts } from '../src/adapters/media-client.js';
import { migrations } from '../src/migrations.js';
import { ChangeBus } from '../src/services/change-bus.js';
import { JobsService } from '../src/services/jobs.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_jobs_test_${randomBytes(6).toString('hex')}`;
const LEASE_SECONDS = 30;
/** The converter's claim timeout (jobs-client.ts), shortened: the worker stops waiting for the answer. */
const CLAIM_TIMEOUT_MS = 300;

const logger = createLogger('test', 'silent');
const pools: Pool[] = [];

/** media's internal API, answering with facts the test chose (the e2e suite runs the real one). */
class StubMedia extends MediaClient {
  readonly facts = new Map<string, MediaFacts>();
  constructor() {
    super('http://127.0.0.1:9', 'unused-internal-token');
  }
  override async get(id: string): Promise<MediaFacts | null> {
    return this.facts.get(id) ?? null;
  }
}
const media = new StubMedia();

/** A jobs replica: its own pool on the shared database. */
async function replica(): Promise<JobsService> {
  const pool = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger, connectionLimit: 4 });
  pools.push(pool);
  return new JobsService(new JobsRepository(pool), media, { kick() {} }, new ChangeBus(), {
    maxInputSeconds: 3600,
    sweepAfterSeconds: 600,
    leaseSeconds: LEASE_SECONDS,
    maxAttempts: 3,
    limits: { activeJobs: 1000, conversionsPerHour: 1000, dispatchedPerUser: 1000 },
  });
}

let pool: Pool;
let jobs: JobsService;
let other: JobsService;

beforeAll(async () => {
  jobs = await replica();
  other = await replica();
  pool = pools[0]!;
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

/** A user's job, QUEUED at attempt 1 with its request sent. */
async function queuedJob() {
  const viewer: Viewer = { userId: randomUUID(), token: 't', expiresAt: new Date(Date.now() + 3600_000) };
  const video: MediaFacts = {
    id: randomUUID(),
    ownerId: viewer.userId,
    kind: 'VIDEO',
    filename: 'clip.mp4',
    durationSeconds: 12.5,
  };
  media.facts.set(video.id, video);
  return { viewer, job: await jobs.convert(viewer, video.id, null) };
}

async function runningJob(workerId = 'worker-a') {
  const queued = await queuedJob();
  expect(await jobs.claim(queued.job.id, 1, workerId, false)).toMatchObject({ proceed: true });
  return queued;
}

const stored = async (id: string): Promise<JobRecord> => (await new JobsRepository(pool).find(pool, id))!;

/** The attempts of the conversion requests written for this job, in order. */
async function requested(jobId: string): Promise<number[]> {
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT payload FROM outbox WHERE exchange = ? AND JSON_VALUE(payload, '$.jobId') = ? ORDER BY id`,
    [Topology.conversionsExchange, jobId],
  );
  return rows.map((r) => ConversionRequest.parse(JSON.parse(String(r.payload))).attempt);
}

async function announcements(jobId: string): Promise<number> {
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM outbox WHERE exchange = ? AND JSON_VALUE(payload, '$.jobId') = ?`,
    [Topology.changesExchange, jobId],
  );
  return Number(rows[0]?.n);
}

/** A moment after the lease of a job claimed or renewed now has run out. */
const afterLease = () => new Date(Date.now() + LEASE_SECONDS * 1000 + 1000);

describe('the lease of a running attempt', () => {
  it('takes back a job whose claim answered after its worker stopped waiting, and queues the next attempt once', async () => {
    const { job } = await queuedJob();
    // Another transaction holds the job's row past the worker's claim timeout.
    const holder = await pool.getConnection();
    let claim: Promise<unknown>;
    try {
      await holder.beginTransaction();
      await holder.query('SELECT id FROM jobs WHERE id = ? FOR UPDATE', [job.id]);
      claim = jobs.claim(job.id, 1, 'worker-a', false);
      const answered = await Promise.race([claim.then(() => true), sleep(CLAIM_TIMEOUT_MS).then(() => false)]);
      expect(answered).toBe(false); // worker-a gave up, and sent its request to the retry queue (not redelivered)
    } finally {
      await holder.commit();
      holder.release();
    }
    await claim; // committed RUNNING for a worker that no longer waits for it
    // The request comes back to a worker, which is refused: the job runs "elsewhere".
    expect(await jobs.claim(job.id, 1, 'worker-b', false)).toEqual({ proceed: false, reason: 'job is RUNNING' });
    expect(await stored(job.id)).toMatchObject({ status: 'RUNNING', claimedBy: 'worker-a', attempts: 1 });

    // Nobody reports on that attempt: once its lease has run out, the job is queued again at attempt 2.
    expect(await jobs.expireLeases(new Date())).toBe(0);
    expect(await jobs.expireLeases(afterLease())).toBe(1);

    expect(await stored(job.id)).toMatchObject({
      status: 'QUEUED',
      attempts: 2,
      claimedBy: null,
      progress: 0,
      errorCode: 'TEMPORARY_FAILURE',
      leaseExpiresAt: null,
    });
    expect(await requested(job.id)).toEqual([1, 2]);
    expect(await jobs.claim(job.id, 2, 'worker-b', false)).toMatchObject({ proceed: true });
    expect(await jobs.expireLeases(afterLease())).toBe(1); // worker-b stopped reporting too: attempt 3
    expect(await requested(job.id)).toEqual([1, 2, 3]);
  });

  it("is renewed by its worker's reports, a heartbeat included, without announcing a change", async () => {
    const { job } = await runningJob();
    const before = await stored(job.id);
    const announced = await announcements(job.id);
    await sleep(20);

    await jobs.applyEvent({ type: 'progress', jobId: job.id, attempt: 1, at: new Date().toISOString(), progress: 0 });

    const after = await stored(job.id);
    expect(after.leaseExpiresAt!.getTime()).toBeGreaterThan(before.leaseExpiresAt!.getTime());
    expect(after.updatedAt).toEqual(before.updatedAt);
    expect(after.progress).toBe(before.progress);
    expect(await announcements(job.id)).toBe(announced);
    // Not yet expired at the first lease's end.
    expect(await jobs.expireLeases(new Date(before.leaseExpiresAt!.getTime() + 10))).toBe(0);
    expect(await stored(job.id)).toMatchObject({ status: 'RUNNING', attempts: 1 });
  });

  it('is not renewed by an older attempt: a worker that comes back after its job was taken is stale', async () => {
    const { job } = await runningJob();
    await jobs.expireLeases(afterLease());
    const at = new Date().toISOString();

    await jobs.applyEvent({ type: 'succeeded', jobId: job.id, attempt: 1, at, outputMediaId: randomUUID() });

    expect(await stored(job.id)).toMatchObject({ status: 'QUEUED', attempts: 2, outputMediaId: null });
    expect(await jobs.claim(job.id, 1, 'worker-a', true)).toMatchObject({ proceed: false });
  });

  it('fails the job when it runs out on the last attempt', async () => {
    const { job } = await runningJob();
    await jobs.expireLeases(afterLease());
    await jobs.claim(job.id, 2, 'worker-b', false);
    await jobs.expireLeases(afterLease());
    await jobs.claim(job.id, 3, 'worker-c', false);

    await jobs.expireLeases(afterLease());

    expect(await stored(job.id)).toMatchObject({ status: 'FAILED', attempts: 3, errorCode: 'GAVE_UP' });
    expect(await requested(job.id)).toEqual([1, 2, 3]);
  });

  it('is taken back exactly once when two replicas find it expired at the same time', async () => {
    const running = await Promise.all(Array.from({ length: 6 }, () => runningJob()));
    const now = afterLease();

    const taken = await Promise.all([jobs.expireLeases(now), other.expireLeases(now)]);

    const ours = running.map(({ job }) => job.id);
    expect(taken[0] + taken[1]).toBeGreaterThanOrEqual(ours.length); // other files' jobs may expire too
    for (const id of ours) {
      expect(await stored(id)).toMatchObject({ status: 'QUEUED', attempts: 2 });
      expect(await requested(id)).toEqual([1, 2]);
    }
  });
});

describe('sweeping requests nobody picked up', () => {
  const SWEEP_AFTER_MS = 600_000;

  async function backdate(id: string, ms: number): Promise<void> {
    await pool.query('UPDATE jobs SET queued_at = ? WHERE id = ?', [new Date(Date.now() - ms), id]);
  }

  it('re-sends a stale request exactly once when two replicas sweep at the same time', async () => {
    const stale = await Promise.all(Array.from({ length: 8 }, () => queuedJob()));
    for (const { job } of stale) await backdate(job.id, 10 * SWEEP_AFTER_MS);

    await Promise.all([jobs.sweep(), other.sweep()]);
    await Promise.all([jobs.sweep(), other.sweep()]);

    for (const { job } of stale) expect(await requested(job.id)).toEqual([1, 1]);
  });

  it('re-sends a request of a long backlog once per doubled wait, not at every threshold', async () => {
    const { job } = await queuedJob();
    await backdate(job.id, SWEEP_AFTER_MS + 1000);
    await jobs.sweep();
    expect(await requested(job.id)).toEqual([1, 1]);

    // One threshold later the re-sent request is still queued behind the backlog: it is not sent a third time.
    await backdate(job.id, SWEEP_AFTER_MS + 1000);
    await jobs.sweep();
    expect(await requested(job.id)).toEqual([1, 1]);

    // Twice the threshold: once more.
    await backdate(job.id, 2 * SWEEP_AFTER_MS + 1000);
    await jobs.sweep();
    expect(await requested(job.id)).toEqual([1, 1, 1]);
  });
});
