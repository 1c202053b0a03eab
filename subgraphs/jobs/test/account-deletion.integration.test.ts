// A deleted account's jobs (issue #15): what jobs does with AccountDeleted, against a real MariaDB.
import { randomBytes, randomUUID } from 'node:crypto';
import { GraphQLError } from 'graphql';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogger,
  JobControl,
  openDatabase,
  Topology,
  type AccountDeleted,
  type Pool,
  type Viewer,
} from '@vidmp3/shared';
import { JobsRepository } from '../src/adapters/jobs-repo.js';
import { MediaClient, type MediaFacts } from '../src/adapters/media-client.js';
import { migrations } from '../src/migrations.js';
import { ChangeBus } from '../src/services/change-bus.js';
import { JobsService } from '../src/services/jobs.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_jobs_test_${randomBytes(6).toString('hex')}`;
const BATCH = 3;

/** media's internal API as jobs sees it: every id is a video of whoever asks (the test's own choice). */
class StubMedia extends MediaClient {
  readonly owners = new Map<string, string>();
  constructor() {
    super('http://127.0.0.1:9', 'unused-internal-token');
  }
  override async get(id: string): Promise<MediaFacts | null> {
    const ownerId = this.owners.get(id);
    return ownerId ? { id, ownerId, kind: 'VIDEO', filename: 'clip.mp4', durationSeconds: 10 } : null;
  }
}

let pool: Pool;
let jobs: JobsService;
const media = new StubMedia();
let kicks = 0;

beforeAll(async () => {
  pool = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger: createLogger('test', 'silent') });
  jobs = new JobsService(
    new JobsRepository(pool),
    media,
    {
      kick: () => {
        kicks += 1;
      },
    },
    new ChangeBus(),
    {
      maxInputSeconds: 3600,
      sweepAfterSeconds: 30,
      limits: { activeJobs: 1000, conversionsPerHour: 1000, dispatchedPerUser: 2 },
      deletionBatch: BATCH,
    },
  );
});

afterAll(async () => {
  await pool?.end();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

const signIn = (): Viewer => ({ userId: randomUUID(), token: 't', expiresAt: new Date(Date.now() + 3600_000) });

async function convert(viewer: Viewer) {
  const mediaId = randomUUID();
  media.owners.set(mediaId, viewer.userId);
  return jobs.convert(viewer, mediaId, null);
}

const deletion = (userId: string): AccountDeleted => ({
  type: 'account-deleted',
  eventId: randomUUID(),
  userId,
  at: new Date().toISOString(),
});

/** Rows naming the user in each of jobs' tables that hold user ids (the outbox is history, not per user). */
async function rowsOf(userId: string): Promise<Record<string, number>> {
  const count = async (sql: string) => {
    const [rows] = await pool.query<RowDataPacket[]>(sql, [userId]);
    return Number(rows[0]?.n);
  };
  return {
    jobs: await count('SELECT COUNT(*) AS n FROM jobs WHERE owner_id = ?'),
    conversion_starts: await count('SELECT COUNT(*) AS n FROM conversion_starts WHERE owner_id = ?'),
    job_quota_users: await count('SELECT COUNT(*) AS n FROM job_quota_users WHERE user_id = ?'),
  };
}

const nothing = { jobs: 0, conversion_starts: 0, job_quota_users: 0 };

async function cancelsSent(jobIds: string[]): Promise<string[]> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT payload FROM outbox WHERE exchange = ?', [
    Topology.controlExchange,
  ]);
  return rows
    .map((r) => JobControl.parse(JSON.parse(String(r.payload))))
    .filter((c) => jobIds.includes(c.jobId))
    .map((c) => c.jobId);
}

async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  const error = await promise.then(
    () => new Error('expected the call to fail'),
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  return (error as GraphQLError).extensions.code;
}

describe('AccountDeleted in jobs', () => {
  it('cancels the active jobs, removes every job and quota row of the user, batch by batch, and leaves others alone', async () => {
    const user = signIn();
    const other = signIn();
    // More jobs than a batch: two dispatched and claimed (one running), the rest waiting their turn.
    const created = [];
    for (let i = 0; i < BATCH * 2 + 1; i++) created.push(await convert(user));
    expect(await jobs.claim(created[0]!.id, 1, 'worker-a', false)).toMatchObject({ proceed: true });
    await jobs.applyEvent({
      type: 'succeeded',
      jobId: created[0]!.id,
      attempt: 1,
      at: new Date().toISOString(),
      outputMediaId: randomUUID(),
    });
    expect(await jobs.claim(created[1]!.id, 1, 'worker-a', false)).toMatchObject({ proceed: true });
    const theirs = await convert(other);
    expect((await rowsOf(user.userId)).jobs).toBe(created.length);

    kicks = 0;
    expect(await jobs.forgetAccount(deletion(user.userId))).toBe(
      `${created.length} jobs removed, ${created.length - 1} cancelled`,
    );

    expect(await rowsOf(user.userId)).toEqual(nothing);
    // Every job that had not finished is cancelled through the control fanout (a running one's worker kills ffmpeg).
    const active = created.slice(1).map((j) => j.id);
    expect((await cancelsSent(active)).sort()).toEqual([...active].sort());
    expect(await cancelsSent([created[0]!.id])).toEqual([]);
    expect(kicks).toBeGreaterThan(0);
    // Nothing of the other user changed.
    expect(await jobs.get(other, theirs.id)).toMatchObject({ id: theirs.id, status: 'QUEUED' });
    expect(await rowsOf(other.userId)).toMatchObject({ jobs: 1, conversion_starts: 1, job_quota_users: 1 });
  });

  it('is idempotent: a redelivered event finds nothing to do', async () => {
    const user = signIn();
    await convert(user);
    const event = deletion(user.userId);
    expect(await jobs.forgetAccount(event)).toMatch(/^1 jobs removed/);
    expect(await jobs.forgetAccount(event)).toBe('nothing left');
    expect(await rowsOf(user.userId)).toEqual(nothing);
  });

  it('refuses conversions and retries of a deleted account with UNAUTHENTICATED, and writes nothing for them', async () => {
    const user = signIn();
    await jobs.forgetAccount(deletion(user.userId));
    expect(await codeOf(convert(user))).toBe('UNAUTHENTICATED');
    expect(await codeOf(jobs.retry(user, randomUUID()))).toBe('NOT_FOUND');
    expect(await rowsOf(user.userId)).toEqual(nothing);
  });

  it('lets nothing that read a job before the deletion bring a quota row back afterwards', async () => {
    const user = signIn();
    await convert(user);
    await jobs.forgetAccount(deletion(user.userId));
    // What a late worker event, the sweeper or a lease expiry does first, having seen one of the user's jobs.
    await new JobsRepository(pool).ensureQuotaUser(user.userId);
    expect(await rowsOf(user.userId)).toEqual(nothing);
  });

  it('answers a worker’s claim and events for a removed job as for a job that does not exist', async () => {
    const user = signIn();
    const job = await convert(user);
    await jobs.forgetAccount(deletion(user.userId));
    expect(await jobs.claim(job.id, 1, 'worker-a', false)).toBeNull();
    await jobs.applyEvent({ type: 'cancelled', jobId: job.id, attempt: 1, at: new Date().toISOString() });
    expect(await rowsOf(user.userId)).toEqual(nothing);
  });
});
