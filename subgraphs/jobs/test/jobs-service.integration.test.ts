import { randomBytes, randomUUID } from 'node:crypto';
import { GraphQLError } from 'graphql';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  ConversionFinished,
  JobStatusChanged,
  ConversionRequest,
  createLogger,
  JobChanged,
  JobControl,
  openDatabase,
  Topology,
  type JobEvent,
  type Pool,
  type PoolConnection,
  type Viewer,
} from '@vidmp3/shared';
import { JobsRepository, type JobRecord, type JobStatus } from '../src/adapters/jobs-repo.js';
import { MediaClient, type MediaFacts } from '../src/adapters/media-client.js';
import { migrations } from '../src/migrations.js';
import { ChangeBus } from '../src/services/change-bus.js';
import { JobFeeds } from '../src/services/job-feeds.js';
import { JobsService } from '../src/services/jobs.js';
import type { OptionsInput } from '../src/services/options.js';
import type { ConversionLimits } from '../src/services/quotas.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_jobs_test_${randomBytes(6).toString('hex')}`;
const SWEEP_AFTER_SECONDS = 30;
const MAX_INPUT_SECONDS = 3600;

const logger = createLogger('test', 'silent');
const databases: string[] = [];
const pools: Pool[] = [];

/** A fresh database of this run with the jobs migrations applied; dropped after the file. */
async function freshDatabase(name = `vidmp3_jobs_test_${randomBytes(6).toString('hex')}`): Promise<Pool> {
  databases.push(name);
  const pool = await openDatabase({ url: `${SERVER}/${name}`, migrations, logger, connectionLimit: 4 });
  pools.push(pool);
  return pool;
}

/**
 * media's internal API as jobs sees it, answering with facts the test chose. media is our own HTTP service:
 * the end-to-end suite exercises the real client against it.
 */
class StubMedia extends MediaClient {
  private readonly facts = new Map<string, MediaFacts>();

  constructor() {
    super('http://127.0.0.1:9', 'unused-internal-token');
  }

  add(facts: MediaFacts): void {
    this.facts.set(facts.id, facts);
  }

  override async get(id: string): Promise<MediaFacts | null> {
    return this.facts.get(id) ?? null;
  }
}

let pool: Pool;
let repo: JobsRepository;
let bus: ChangeBus;
let jobs: JobsService;
const media = new StubMedia();

/** Limits high enough that the specifications of other behaviour never meet them. */
const UNLIMITED: ConversionLimits = { activeJobs: 1000, conversionsPerHour: 1000, dispatchedPerUser: 1000 };

function serviceOn(
  repository: JobsRepository,
  options: Partial<{ sweepAfterSeconds: number; limits: Partial<ConversionLimits> }> = {},
) {
  return new JobsService(repository, media, { kick() {} }, bus, {
    maxInputSeconds: MAX_INPUT_SECONDS,
    sweepAfterSeconds: options.sweepAfterSeconds ?? SWEEP_AFTER_SECONDS,
    limits: { ...UNLIMITED, ...options.limits },
  });
}

beforeAll(async () => {
  pool = await freshDatabase(DATABASE);
  repo = new JobsRepository(pool);
  bus = new ChangeBus();
  jobs = serviceOn(repo);
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  const conn = await mysql.createConnection(SERVER);
  for (const name of databases) await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await conn.end();
});

// ---- factories

/** A signed-in user nobody else in this run is. */
const signIn = (): Viewer => ({
  userId: randomUUID(),
  token: 'test-token',
  expiresAt: new Date(Date.now() + 3600_000),
});

/** A media of the viewer's, as media would describe it. */
function upload(owner: Viewer, facts: Partial<MediaFacts> = {}): MediaFacts {
  const uploaded: MediaFacts = {
    id: randomUUID(),
    ownerId: owner.userId,
    kind: 'VIDEO',
    filename: 'clip.mp4',
    durationSeconds: 12.5,
    ...facts,
  };
  media.add(uploaded);
  return uploaded;
}

/** A user with one video, converted: the job is QUEUED at attempt 1. */
async function queuedJob(options?: OptionsInput) {
  const viewer = signIn();
  const video = upload(viewer);
  const job = await jobs.convert(viewer, video.id, options);
  return { viewer, video, job };
}

async function runningJob(workerId = 'worker-a') {
  const queued = await queuedJob();
  await jobs.claim(queued.job.id, 1, workerId, false);
  return queued;
}

const at = () => new Date().toISOString();

type EventOf<T extends JobEvent['type']> = Omit<Extract<JobEvent, { type: T }>, 'type' | 'jobId' | 'at' | 'attempt'>;

/** A worker's event about attempt `attempt` (1 unless given) of a job. */
function event<T extends JobEvent['type']>(
  type: T,
  job: { id: string },
  fields: EventOf<T> & { attempt?: number },
): JobEvent {
  return { attempt: 1, ...fields, type, jobId: job.id, at: at() } as JobEvent;
}

const failure = { code: 'TIMEOUT', message: 'ffmpeg ran too long' };

async function finishedJob(status: 'SUCCEEDED' | 'FAILED' | 'CANCELLED') {
  const running = await runningJob();
  if (status === 'SUCCEEDED') await jobs.applyEvent(event('succeeded', running.job, { outputMediaId: randomUUID() }));
  if (status === 'FAILED') await jobs.applyEvent(event('failed', running.job, { error: failure }));
  if (status === 'CANCELLED') await jobs.cancel(running.viewer, running.job.id);
  return running;
}

// ---- reading what the database holds

const stored = async (id: string, db: Pool = pool): Promise<JobRecord | null> => new JobsRepository(db).find(db, id);

async function storedOrFail(id: string): Promise<JobRecord> {
  const job = await stored(id);
  if (!job) throw new Error(`job ${id} is not in the database`);
  return job;
}

interface OutboxRow {
  exchange: string;
  routingKey: string;
  payload: unknown;
  publishedAt: Date | null;
}

/** The outbox messages that name this job, oldest first. */
async function outboxOf(jobId: string, db: Pool = pool): Promise<OutboxRow[]> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT exchange, routing_key, payload, published_at FROM outbox WHERE JSON_VALUE(payload, '$.jobId') = ?
     ORDER BY id`,
    [jobId],
  );
  return rows.map((r) => ({
    exchange: String(r.exchange),
    routingKey: String(r.routing_key),
    payload: JSON.parse(String(r.payload)) as unknown,
    publishedAt: r.published_at as Date | null,
  }));
}

const requestsOf = async (jobId: string) =>
  (await outboxOf(jobId))
    .filter((m) => m.exchange === Topology.conversionsExchange)
    .map((m) => ConversionRequest.parse(m.payload));

async function jobRowsFor(inputMediaId: string, db: Pool = pool): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM jobs WHERE input_media_id = ?', [
    inputMediaId,
  ]);
  return Number(rows[0]?.n);
}

async function outboxCount(db: Pool = pool): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM outbox');
  return Number(rows[0]?.n);
}

/** The GraphQL error a call fails with; fails the test if the call succeeds. */
async function failureOf(promise: Promise<unknown>): Promise<GraphQLError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  return error as GraphQLError;
}

const codeOf = async (promise: Promise<unknown>) => (await failureOf(promise)).extensions.code;

// ---- specifications

describe('convertMedia', () => {
  it('queues the job at attempt 1 together with its conversion request and a change announcement', async () => {
    const viewer = signIn();
    const video = upload(viewer, { durationSeconds: 42 });

    const job = await jobs.convert(viewer, video.id, { bitrateKbps: 128, channels: 1, endSeconds: 30 }, 'req-1');

    expect(await stored(job.id)).toMatchObject({
      id: job.id,
      ownerId: viewer.userId,
      inputMediaId: video.id,
      status: 'QUEUED',
      progress: 0,
      attempts: 1,
      inputDurationSeconds: 42,
      options: { bitrateKbps: 128, sampleRateHz: null, channels: 1, startSeconds: null, endSeconds: 30 },
      outputMediaId: null,
      claimedBy: null,
    });
    const messages = await outboxOf(job.id);
    expect(messages).toHaveLength(3);
    const request = messages.find((m) => m.exchange === Topology.conversionsExchange);
    expect(request?.routingKey).toBe(Topology.conversionsQueue);
    expect(ConversionRequest.parse(request?.payload)).toEqual({
      jobId: job.id,
      attempt: 1,
      ownerId: viewer.userId,
      inputMediaId: video.id,
      inputDurationSeconds: 42,
      options: { bitrateKbps: 128, sampleRateHz: null, channels: 1, startSeconds: null, endSeconds: 30 },
      requestId: 'req-1',
    });
    const change = messages.find((m) => m.exchange === Topology.changesExchange);
    expect(JobChanged.parse(change?.payload)).toEqual({ jobId: job.id, ownerId: viewer.userId });
    const status = messages.find((m) => m.exchange === Topology.notificationsExchange);
    expect(status?.routingKey).toBe(Topology.notificationsQueue);
    expect(JobStatusChanged.parse(status?.payload)).toMatchObject({ eventId: `${job.id}:1:QUEUED`, status: 'QUEUED' });
    expect(messages.every((m) => m.publishedAt === null)).toBe(true);
  });

  it('fills in the default options', async () => {
    const { job } = await queuedJob();

    expect((await requestsOf(job.id))[0]?.options).toEqual({
      bitrateKbps: 192,
      sampleRateHz: null,
      channels: null,
      startSeconds: null,
      endSeconds: null,
    });
  });

  it('writes no job when its request cannot be written to the outbox', async () => {
    // The job row and the request row have both been written when the announcement fails.
    class FailingOutbox extends JobsRepository {
      override async addOutbox(db: Pool | PoolConnection, exchange: string, routingKey: string, payload: unknown) {
        if (exchange === Topology.changesExchange) throw new Error('outbox unavailable');
        await super.addOutbox(db, exchange, routingKey, payload);
      }
    }
    const viewer = signIn();
    const video = upload(viewer);
    const before = await outboxCount();

    await expect(serviceOn(new FailingOutbox(pool)).convert(viewer, video.id, null)).rejects.toThrow(
      'outbox unavailable',
    );

    expect(await jobRowsFor(video.id)).toBe(0);
    expect(await outboxCount()).toBe(before);
  });

  it('writes no job when the database refuses the outbox insert', async () => {
    const broken = await freshDatabase();
    await broken.query('DROP TABLE outbox');
    const viewer = signIn();
    const video = upload(viewer);

    await expect(serviceOn(new JobsRepository(broken)).convert(viewer, video.id, null)).rejects.toThrow(/outbox/);

    expect(await jobRowsFor(video.id, broken)).toBe(0);
  });

  it("answers NOT_FOUND for someone else's video and for a video that does not exist, and writes nothing", async () => {
    const owner = signIn();
    const video = upload(owner);
    const before = await outboxCount();

    expect(await codeOf(jobs.convert(signIn(), video.id, null))).toBe('NOT_FOUND');
    expect(await codeOf(jobs.convert(owner, randomUUID(), null))).toBe('NOT_FOUND');

    expect(await jobRowsFor(video.id)).toBe(0);
    expect(await outboxCount()).toBe(before);
  });

  it('refuses to convert audio with BAD_USER_INPUT', async () => {
    const viewer = signIn();
    const audio = upload(viewer, { kind: 'AUDIO', filename: 'song.mp3' });

    expect(await codeOf(jobs.convert(viewer, audio.id, null))).toBe('BAD_USER_INPUT');
    expect(await jobRowsFor(audio.id)).toBe(0);
  });

  it('refuses a video without a known duration, or longer than the limit, with BAD_USER_INPUT', async () => {
    const viewer = signIn();
    const unknown = upload(viewer, { durationSeconds: null });
    const tooLong = upload(viewer, { durationSeconds: MAX_INPUT_SECONDS + 1 });

    expect(await codeOf(jobs.convert(viewer, unknown.id, null))).toBe('BAD_USER_INPUT');
    expect(await codeOf(jobs.convert(viewer, tooLong.id, null))).toBe('BAD_USER_INPUT');
  });

  it('refuses invalid options with BAD_USER_INPUT naming the field, and writes nothing', async () => {
    const viewer = signIn();
    const video = upload(viewer, { durationSeconds: 10 });

    const error = await failureOf(jobs.convert(viewer, video.id, { endSeconds: 11 }));

    expect(error.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'endSeconds' });
    expect(await jobRowsFor(video.id)).toBe(0);
  });

  it('asks anonymous callers to log in', async () => {
    const video = upload(signIn());

    expect(await codeOf(jobs.convert(null, video.id, null))).toBe('UNAUTHENTICATED');
  });
});

describe('claiming an attempt', () => {
  it('starts a queued attempt: the job becomes RUNNING, claimed by the worker', async () => {
    const { job } = await queuedJob();

    expect(await jobs.claim(job.id, 1, 'worker-a', false)).toMatchObject({ proceed: true });

    const claimed = await storedOrFail(job.id);
    expect(claimed).toMatchObject({ status: 'RUNNING', claimedBy: 'worker-a' });
    expect(claimed.startedAt).toBeInstanceOf(Date);
  });

  it('refuses a second worker while the attempt runs, unless the request was redelivered', async () => {
    const { job } = await runningJob('worker-a');

    expect(await jobs.claim(job.id, 1, 'worker-b', false)).toMatchObject({ proceed: false });
    expect(await storedOrFail(job.id)).toMatchObject({ status: 'RUNNING', claimedBy: 'worker-a' });
  });

  it('lets a redelivered request take a running attempt over', async () => {
    const { job } = await runningJob('worker-a');

    expect(await jobs.claim(job.id, 1, 'worker-b', true)).toMatchObject({ proceed: true });
    expect(await storedOrFail(job.id)).toMatchObject({ status: 'RUNNING', claimedBy: 'worker-b' });
  });

  it('lets exactly one of several workers claiming at once proceed', async () => {
    const { job } = await queuedJob();

    const claims = await Promise.all(
      ['worker-a', 'worker-b', 'worker-c', 'worker-d'].map((w) => jobs.claim(job.id, 1, w, false)),
    );

    expect(claims.filter((c) => c?.proceed)).toHaveLength(1);
    const winner = ['worker-a', 'worker-b', 'worker-c', 'worker-d'][claims.findIndex((c) => c?.proceed)];
    expect(await storedOrFail(job.id)).toMatchObject({ status: 'RUNNING', claimedBy: winner });
  });

  it('refuses a stale attempt', async () => {
    const { job } = await runningJob('worker-a');
    await jobs.applyEvent(event('retrying', job, { nextAttempt: 2, error: failure }));

    expect(await jobs.claim(job.id, 1, 'worker-b', true)).toMatchObject({ proceed: false });
    expect(await jobs.claim(job.id, 3, 'worker-b', false)).toMatchObject({ proceed: false });
    expect(await storedOrFail(job.id)).toMatchObject({ status: 'QUEUED', attempts: 2, claimedBy: null });
  });

  it('starts the next attempt even when its request arrives before the retrying event', async () => {
    const { job } = await runningJob('worker-a');

    expect(await jobs.claim(job.id, 2, 'worker-b', false)).toMatchObject({ proceed: true });
    expect(await storedOrFail(job.id)).toMatchObject({ status: 'RUNNING', attempts: 2, claimedBy: 'worker-b' });
    // The late event of attempt 1 no longer moves the job back to QUEUED, and a copy of the request is refused.
    await jobs.applyEvent(event('retrying', job, { nextAttempt: 2, error: failure }));
    expect(await jobs.claim(job.id, 2, 'worker-c', false)).toMatchObject({ proceed: false });
    expect(await storedOrFail(job.id)).toMatchObject({ status: 'RUNNING', attempts: 2, claimedBy: 'worker-b' });
  });

  it('refuses a cancelled job', async () => {
    const { viewer, job } = await queuedJob();
    await jobs.cancel(viewer, job.id);

    expect(await jobs.claim(job.id, 1, 'worker-a', false)).toMatchObject({ proceed: false });
    expect(await jobs.claim(job.id, 1, 'worker-a', true)).toMatchObject({ proceed: false });
    expect(await storedOrFail(job.id)).toMatchObject({ status: 'CANCELLED', claimedBy: null });
  });

  it('answers null for a job that does not exist', async () => {
    expect(await jobs.claim(randomUUID(), 1, 'worker-a', false)).toBeNull();
  });
});

describe('announcing a finished conversion to the notifier', () => {
  const finishedOf = async (jobId: string) =>
    (await outboxOf(jobId))
      .filter((m) => (m.payload as { type?: unknown }).type === 'conversion-finished')
      .map((m) => ({ routingKey: m.routingKey, event: ConversionFinished.parse(m.payload) }));

  it('writes one ConversionFinished with the end it records, and none for a duplicate of the final event', async () => {
    const { job, viewer } = await runningJob();
    const outputMediaId = randomUUID();
    const succeeded = event('succeeded', job, { outputMediaId });
    await jobs.applyEvent(succeeded);
    await jobs.applyEvent(succeeded);

    expect(await finishedOf(job.id)).toEqual([
      {
        routingKey: Topology.notificationsQueue,
        event: {
          type: 'conversion-finished',
          eventId: `${job.id}:1:SUCCEEDED`,
          jobId: job.id,
          attempt: 1,
          ownerId: viewer.userId,
          status: 'SUCCEEDED',
          outputMediaId,
          errorCode: null,
          finishedAt: succeeded.at,
        },
      },
    ]);
  });

  it('announces a failure with its code, and a retried job’s next end as a new event', async () => {
    const { job, viewer } = await finishedJob('FAILED');
    await jobs.retry(viewer, job.id);
    await jobs.claim(job.id, 2, 'worker-b', false);
    await jobs.applyEvent(event('failed', job, { attempt: 2, error: failure }));

    expect((await finishedOf(job.id)).map(({ event: e }) => [e.eventId, e.errorCode])).toEqual([
      [`${job.id}:1:FAILED`, 'TIMEOUT'],
      [`${job.id}:2:FAILED`, 'TIMEOUT'],
    ]);
  });

  it('announces nothing for a cancelled job', async () => {
    const { job } = await finishedJob('CANCELLED');
    expect(await finishedOf(job.id)).toEqual([]);
  });
});

describe('announcing status changes for webhooks', () => {
  const statusesOf = async (jobId: string) =>
    (await outboxOf(jobId))
      .filter((m) => (m.payload as { type?: unknown }).type === 'job-status-changed')
      .map((m) => {
        expect([m.exchange, m.routingKey]).toEqual([Topology.notificationsExchange, Topology.notificationsQueue]);
        return JobStatusChanged.parse(m.payload).eventId;
      });

  it('writes one JobStatusChanged per status entered, none for progress or duplicates', async () => {
    const { job } = await runningJob();
    await jobs.applyEvent(event('started', job, {}));
    await jobs.applyEvent(event('progress', job, { progress: 0.3 }));
    await jobs.applyEvent(event('progress', job, { progress: 0.6 }));
    const succeeded = event('succeeded', job, { outputMediaId: randomUUID() });
    await jobs.applyEvent(succeeded);
    await jobs.applyEvent(succeeded);

    expect(await statusesOf(job.id)).toEqual([`${job.id}:1:QUEUED`, `${job.id}:1:RUNNING`, `${job.id}:1:SUCCEEDED`]);
  });

  it('announces a failure, the owner’s retry as QUEUED at the next attempt, and a cancel', async () => {
    const { job, viewer } = await finishedJob('FAILED');
    await jobs.retry(viewer, job.id);
    await jobs.cancel(viewer, job.id);

    expect(await statusesOf(job.id)).toEqual([
      `${job.id}:1:QUEUED`,
      `${job.id}:1:RUNNING`,
      `${job.id}:1:FAILED`,
      `${job.id}:2:QUEUED`,
      `${job.id}:2:CANCELLED`,
    ]);
  });

  it('writes nothing when the change is not written (a refused cancel)', async () => {
    const { job, viewer } = await finishedJob('SUCCEEDED');
    const before = await statusesOf(job.id);
    await expect(jobs.cancel(viewer, job.id)).rejects.toThrow();
    expect(await statusesOf(job.id)).toEqual(before);
  });
});

describe('applying workers’ events', () => {
  it('applies a duplicate event once: the copy changes nothing and announces nothing', async () => {
    const { job } = await runningJob();
    const progress = event('progress', job, { progress: 0.5 });
    await jobs.applyEvent(progress);
    const afterFirst = await storedOrFail(job.id);
    const messages = (await outboxOf(job.id)).length;

    await jobs.applyEvent(progress);
    await jobs.applyEvent(event('started', job, {}));

    // Only the lease was renewed (the worker is alive): nothing a user sees.
    expect(await storedOrFail(job.id)).toEqual({ ...afterFirst, leaseExpiresAt: expect.any(Date) as Date });
    expect(await outboxOf(job.id)).toHaveLength(messages);
  });

  it('announces each applied event with one job-changed message', async () => {
    const { job } = await runningJob();
    const messages = (await outboxOf(job.id)).length;

    await jobs.applyEvent(event('progress', job, { progress: 0.25 }));

    const added = (await outboxOf(job.id)).slice(messages);
    expect(added).toHaveLength(1);
    expect(added[0]?.exchange).toBe(Topology.changesExchange);
  });

  it('stamps updatedAt with every applied change, to the millisecond', async () => {
    const { job } = await queuedJob();
    const queued = await storedOrFail(job.id);
    expect(queued.updatedAt.getTime()).toBeGreaterThanOrEqual(queued.createdAt.getTime());
    // A clock a millisecond on from the last stamp, so the next one must differ from it.
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(queued.updatedAt.getTime()));
    const before = Date.now();

    await jobs.applyEvent(event('progress', job, { progress: 0.1 }));

    const after = Date.now();
    const updatedAt = (await storedOrFail(job.id)).updatedAt.getTime();
    expect(updatedAt).toBeGreaterThanOrEqual(before);
    expect(updatedAt).toBeLessThanOrEqual(after);
  });

  it('ignores a progress value lower than the current one (an older message)', async () => {
    const { job } = await runningJob();
    await jobs.applyEvent(event('progress', job, { progress: 0.6 }));
    const messages = (await outboxOf(job.id)).length;

    await jobs.applyEvent(event('progress', job, { progress: 0.4 }));

    expect((await storedOrFail(job.id)).progress).toBe(0.6);
    expect(await outboxOf(job.id)).toHaveLength(messages);
  });

  it('marks a job RUNNING on its first progress, even if "started" was lost', async () => {
    const { job } = await queuedJob();

    await jobs.applyEvent(event('progress', job, { progress: 0.1 }));

    const running = await storedOrFail(job.id);
    expect(running).toMatchObject({ status: 'RUNNING', progress: 0.1 });
    expect(running.startedAt).toBeInstanceOf(Date);
  });

  it('ignores the events of an older attempt', async () => {
    const { job } = await runningJob();
    await jobs.applyEvent(event('retrying', job, { nextAttempt: 2, error: failure }));
    const retried = await storedOrFail(job.id);

    await jobs.applyEvent(event('progress', job, { attempt: 1, progress: 0.9 }));
    await jobs.applyEvent(event('succeeded', job, { attempt: 1, outputMediaId: randomUUID() }));
    await jobs.applyEvent(event('failed', job, { attempt: 1, error: failure }));

    expect(await storedOrFail(job.id)).toEqual(retried);
  });

  it.each([
    ['progress', (job: JobRecord) => event('progress', job, { progress: 0.9 })],
    ['started', (job: JobRecord) => event('started', job, {})],
    ['succeeded', (job: JobRecord) => event('succeeded', job, { outputMediaId: randomUUID() })],
    ['failed', (job: JobRecord) => event('failed', job, { error: failure })],
    ['retrying', (job: JobRecord) => event('retrying', job, { nextAttempt: 2, error: failure })],
  ])('leaves a cancelled job cancelled when "%s" arrives afterwards', async (_, late) => {
    const { job } = await finishedJob('CANCELLED');
    const cancelled = await storedOrFail(job.id);
    const messages = (await outboxOf(job.id)).length;

    await jobs.applyEvent(late(job));

    expect(await storedOrFail(job.id)).toEqual(cancelled);
    expect(await outboxOf(job.id)).toHaveLength(messages);
  });

  it('never changes a succeeded or failed job', async () => {
    const succeeded = await finishedJob('SUCCEEDED');
    const failed = await finishedJob('FAILED');
    const before = [await storedOrFail(succeeded.job.id), await storedOrFail(failed.job.id)];

    await jobs.applyEvent(event('failed', succeeded.job, { error: failure }));
    await jobs.applyEvent(event('cancelled', succeeded.job, {}));
    await jobs.applyEvent(event('succeeded', failed.job, { outputMediaId: randomUUID() }));
    await jobs.applyEvent(event('progress', failed.job, { progress: 0.99 }));

    expect([await storedOrFail(succeeded.job.id), await storedOrFail(failed.job.id)]).toEqual(before);
  });

  it('moves a retrying job back to QUEUED at the next attempt and keeps the error', async () => {
    const { job } = await runningJob();
    await jobs.applyEvent(event('progress', job, { progress: 0.3 }));

    await jobs.applyEvent(event('retrying', job, { nextAttempt: 2, error: failure }));

    expect(await storedOrFail(job.id)).toMatchObject({
      status: 'QUEUED',
      attempts: 2,
      progress: 0,
      claimedBy: null,
      errorCode: 'TIMEOUT',
      errorMessage: 'ffmpeg ran too long',
      finishedAt: null,
    });
  });

  it('records success with the output and progress 1', async () => {
    const { job } = await runningJob();
    await jobs.applyEvent(event('progress', job, { progress: 0.7 }));
    const outputMediaId = randomUUID();

    await jobs.applyEvent(event('succeeded', job, { outputMediaId }));

    const done = await storedOrFail(job.id);
    expect(done).toMatchObject({ status: 'SUCCEEDED', progress: 1, outputMediaId, errorCode: null });
    expect(done.finishedAt).toBeInstanceOf(Date);
  });

  it('records failure with its error', async () => {
    const { job } = await runningJob();

    await jobs.applyEvent(event('failed', job, { error: { code: 'UNSUPPORTED_MEDIA', message: 'no audio' } }));

    expect(await storedOrFail(job.id)).toMatchObject({
      status: 'FAILED',
      errorCode: 'UNSUPPORTED_MEDIA',
      errorMessage: 'no audio',
    });
  });

  it('does nothing for an event about a job that does not exist', async () => {
    const before = await outboxCount();

    await jobs.applyEvent(event('progress', { id: randomUUID() }, { progress: 0.5 }));

    expect(await outboxCount()).toBe(before);
  });
});

describe('cancelJob', () => {
  it.each([
    ['queued', queuedJob],
    ['running', () => runningJob()],
  ])('cancels a %s job and tells the workers to stop it', async (_, make) => {
    const { viewer, job } = await make();
    const messages = (await outboxOf(job.id)).length;

    const cancelled = await jobs.cancel(viewer, job.id);

    expect(cancelled.status).toBe('CANCELLED');
    const row = await storedOrFail(job.id);
    expect(row.status).toBe('CANCELLED');
    expect(row.finishedAt).toBeInstanceOf(Date);
    const added = (await outboxOf(job.id)).slice(messages);
    const control = added.filter((m) => m.exchange === Topology.controlExchange);
    expect(control).toHaveLength(1);
    expect(control[0]?.routingKey).toBe('');
    expect(JobControl.parse(control[0]?.payload)).toEqual({ type: 'cancel', jobId: job.id, attempt: 1 });
    expect(added.filter((m) => m.exchange === Topology.changesExchange)).toHaveLength(1);
  });

  it('names the attempt it stops, so that a worker of a later attempt ignores it', async () => {
    const { viewer, job } = await runningJob();
    await jobs.applyEvent(event('retrying', job, { nextAttempt: 2, error: failure }));
    await jobs.claim(job.id, 2, 'worker-b', false);

    await jobs.cancel(viewer, job.id);

    const control = (await outboxOf(job.id)).filter((m) => m.exchange === Topology.controlExchange);
    expect(control.map((m) => JobControl.parse(m.payload))).toEqual([{ type: 'cancel', jobId: job.id, attempt: 2 }]);
  });

  it.each(['SUCCEEDED', 'FAILED', 'CANCELLED'] as const)(
    'answers CONFLICT for a %s job and changes nothing',
    async (status) => {
      const { viewer, job } = await finishedJob(status);
      const before = await storedOrFail(job.id);
      const messages = (await outboxOf(job.id)).length;

      expect(await codeOf(jobs.cancel(viewer, job.id))).toBe('CONFLICT');

      expect(await storedOrFail(job.id)).toEqual(before);
      expect(await outboxOf(job.id)).toHaveLength(messages);
    },
  );

  it("answers NOT_FOUND for someone else's job and for a job that does not exist", async () => {
    const { job } = await runningJob();
    const messages = (await outboxOf(job.id)).length;

    expect(await codeOf(jobs.cancel(signIn(), job.id))).toBe('NOT_FOUND');
    expect(await codeOf(jobs.cancel(signIn(), randomUUID()))).toBe('NOT_FOUND');

    expect((await storedOrFail(job.id)).status).toBe('RUNNING');
    expect(await outboxOf(job.id)).toHaveLength(messages);
  });
});

describe('retryJob', () => {
  it.each(['FAILED', 'CANCELLED'] as const)(
    'queues a %s job again as its next attempt, with a new request',
    async (status) => {
      const { viewer, job } = await finishedJob(status);

      const retried = await jobs.retry(viewer, job.id, 'req-retry');

      expect(retried).toMatchObject({ status: 'QUEUED', attempts: 2 });
      expect(await storedOrFail(job.id)).toMatchObject({
        status: 'QUEUED',
        attempts: 2,
        progress: 0,
        outputMediaId: null,
        errorCode: null,
        errorMessage: null,
        claimedBy: null,
        startedAt: null,
        finishedAt: null,
      });
      const requests = await requestsOf(job.id);
      expect(requests.map((r) => r.attempt)).toEqual([1, 2]);
      expect(requests[1]).toMatchObject({ jobId: job.id, ownerId: viewer.userId, requestId: 'req-retry' });
      expect(await jobs.claim(job.id, 2, 'worker-b', false)).toMatchObject({ proceed: true });
    },
  );

  it.each(['QUEUED', 'RUNNING', 'SUCCEEDED'] as const)(
    'answers CONFLICT for a %s job and changes nothing',
    async (status) => {
      const { viewer, job } =
        status === 'QUEUED' ? await queuedJob() : status === 'RUNNING' ? await runningJob() : await finishedJob(status);
      const before = await storedOrFail(job.id);
      const messages = (await outboxOf(job.id)).length;

      expect(await codeOf(jobs.retry(viewer, job.id))).toBe('CONFLICT');

      expect(await storedOrFail(job.id)).toEqual(before);
      expect(await outboxOf(job.id)).toHaveLength(messages);
    },
  );

  it("answers NOT_FOUND for someone else's job", async () => {
    const { job } = await finishedJob('FAILED');

    expect(await codeOf(jobs.retry(signIn(), job.id))).toBe('NOT_FOUND');
    expect((await storedOrFail(job.id)).status).toBe('FAILED');
  });
});

describe("listing a user's jobs", () => {
  async function jobsOf(viewer: Viewer, count: number): Promise<JobRecord[]> {
    const video = upload(viewer);
    const created: JobRecord[] = [];
    for (let i = 0; i < count; i++) created.push(await jobs.convert(viewer, video.id, null));
    return created;
  }

  const newestFirst = (list: JobRecord[]) =>
    [...list]
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .map((j) => j.id);

  async function allPages(viewer: Viewer, pageSize: number, status?: JobStatus) {
    const ids: string[] = [];
    const sizes: number[] = [];
    let after: string | null = null;
    for (;;) {
      const page = await jobs.list(viewer, viewer.userId, { status: status ?? null, first: pageSize, after });
      ids.push(...page.edges.map((e) => e.node.id));
      sizes.push(page.edges.length);
      if (!page.pageInfo.hasNextPage) return { ids, sizes };
      after = page.pageInfo.endCursor;
    }
  }

  it('pages through all of them, newest first, each exactly once', async () => {
    const viewer = signIn();
    const mine = await jobsOf(viewer, 5);
    await jobsOf(signIn(), 2);

    const { ids, sizes } = await allPages(viewer, 2);

    expect(sizes).toEqual([2, 2, 1]);
    expect(ids).toEqual(newestFirst(mine));
  });

  it('filters by status', async () => {
    const viewer = signIn();
    const mine = await jobsOf(viewer, 5);
    const failed = [mine[1]!, mine[3]!];
    for (const job of failed) await jobs.applyEvent(event('failed', job, { error: failure }));
    await jobs.cancel(viewer, mine[4]!.id);

    expect((await allPages(viewer, 1, 'FAILED')).ids).toEqual(newestFirst(failed));
    expect((await allPages(viewer, 10, 'QUEUED')).ids).toEqual(newestFirst([mine[0]!, mine[2]!]));
    expect((await allPages(viewer, 10, 'CANCELLED')).ids).toEqual([mine[4]!.id]);
    expect((await allPages(viewer, 10, 'SUCCEEDED')).ids).toEqual([]);
  });

  it("answers NOT_FOUND for someone else's list and BAD_USER_INPUT for a bad page size or cursor", async () => {
    const viewer = signIn();

    expect(await codeOf(jobs.list(viewer, signIn().userId, {}))).toBe('NOT_FOUND');
    expect(await codeOf(jobs.list(viewer, viewer.userId, { first: 101 }))).toBe('BAD_USER_INPUT');
    expect(await codeOf(jobs.list(viewer, viewer.userId, { after: 'not-a-cursor' }))).toBe('BAD_USER_INPUT');
  });
});

describe('watching a job', () => {
  /** Applies an event and announces it on the bus, as the job-changes consumer would. */
  async function apply(job: JobRecord, e: JobEvent): Promise<void> {
    await jobs.applyEvent(e);
    bus.publish({ jobId: job.id, ownerId: job.ownerId });
  }

  /** What a `jobUpdated` subscriber is handed. */
  const watch = async (viewer: Viewer, id: string) => await new JobFeeds(repo, bus).watchJob(viewer, id);

  it('yields the current state, then one update per change, and ends after the final state', async () => {
    const { viewer, job } = await queuedJob();
    const updates = await watch(viewer, job.id);

    const first = await updates.next();
    expect(first.value).toMatchObject({ jobUpdated: { id: job.id, status: 'QUEUED', progress: 0 } });

    await apply(job, event('started', job, {}));
    expect((await updates.next()).value).toMatchObject({ jobUpdated: { status: 'RUNNING', progress: 0 } });

    await apply(job, event('progress', job, { progress: 0.5 }));
    expect((await updates.next()).value).toMatchObject({ jobUpdated: { status: 'RUNNING', progress: 0.5 } });

    const outputMediaId = randomUUID();
    await apply(job, event('succeeded', job, { outputMediaId }));
    expect((await updates.next()).value).toMatchObject({
      jobUpdated: { status: 'SUCCEEDED', progress: 1, outputMediaId },
    });

    expect(await updates.next()).toEqual({ done: true, value: undefined });
  });

  it('hears a change this replica made at once, before the outbox brings it back, and sends each state once', async () => {
    const { viewer, job } = await queuedJob();
    const updates = await watch(viewer, job.id);
    await updates.next();

    // No relay runs here and nothing is published on the bus: only the service's own announcement after commit.
    await jobs.applyEvent(event('started', job, {}));
    expect((await updates.next()).value).toMatchObject({ jobUpdated: { status: 'RUNNING', progress: 0 } });
    // The same change coming back through RabbitMQ is not sent again; the next one is.
    bus.publish({ jobId: job.id, ownerId: job.ownerId });
    await jobs.applyEvent(event('progress', job, { progress: 0.25 }));
    expect((await updates.next()).value).toMatchObject({ jobUpdated: { status: 'RUNNING', progress: 0.25 } });
  });

  it('hears nothing of other jobs', async () => {
    const { viewer, job } = await queuedJob();
    const other = await queuedJob();
    const updates = await watch(viewer, job.id);
    await updates.next();

    await apply(other.job, event('started', other.job, {}));
    await apply(job, event('failed', job, { error: failure }));

    expect((await updates.next()).value).toMatchObject({ jobUpdated: { id: job.id, status: 'FAILED' } });
    expect((await updates.next()).done).toBe(true);
  });

  it('yields a finished job once and ends', async () => {
    const { viewer, job } = await finishedJob('FAILED');
    const updates = await watch(viewer, job.id);

    expect((await updates.next()).value).toMatchObject({ jobUpdated: { status: 'FAILED' } });
    expect((await updates.next()).done).toBe(true);
  });

  it('ends at once when the subscriber leaves while no change is pending', async () => {
    const { viewer, job } = await queuedJob();
    const updates = await watch(viewer, job.id);
    await updates.next();
    const waiting = updates.next();

    await updates.return?.();

    expect(await waiting).toMatchObject({ done: true });
  });

  it("answers NOT_FOUND for someone else's job and for a job that does not exist", async () => {
    const { job } = await queuedJob();

    expect(await codeOf(watch(signIn(), job.id).then((updates) => updates.next()))).toBe('NOT_FOUND');
    expect(await codeOf(watch(signIn(), randomUUID()).then((updates) => updates.next()))).toBe('NOT_FOUND');
  });
});

describe('sweeping jobs queued too long', () => {
  async function backdate(id: string, seconds: number): Promise<void> {
    await pool.query('UPDATE jobs SET queued_at = ? WHERE id = ?', [new Date(Date.now() - seconds * 1000), id]);
  }

  it('publishes the requests of QUEUED jobs older than the threshold again, and nothing else', async () => {
    const stale = await queuedJob();
    const fresh = await queuedJob();
    const running = await runningJob();
    const cancelled = await queuedJob();
    await jobs.cancel(cancelled.viewer, cancelled.job.id);
    for (const { job } of [stale, running, cancelled]) await backdate(job.id, SWEEP_AFTER_SECONDS * 10);
    await backdate(fresh.job.id, SWEEP_AFTER_SECONDS / 2);
    const before = new Map<string, number>();
    for (const { job } of [fresh, running, cancelled]) before.set(job.id, (await outboxOf(job.id)).length);
    const sweptAt = Date.now();

    expect(await jobs.sweep()).toBe(1);

    const requests = await requestsOf(stale.job.id);
    expect(requests).toHaveLength(2);
    expect(requests[1]).toEqual(requests[0]);
    const swept = await storedOrFail(stale.job.id);
    expect(swept).toMatchObject({ status: 'QUEUED', attempts: 1 });
    expect(swept.queuedAt.getTime()).toBeGreaterThanOrEqual(sweptAt - 1000);
    for (const { job } of [fresh, running, cancelled]) {
      expect(await outboxOf(job.id)).toHaveLength(before.get(job.id)!);
    }
  });

  it('waits the whole threshold again before publishing a swept request once more', async () => {
    const stale = await queuedJob();
    await backdate(stale.job.id, SWEEP_AFTER_SECONDS * 10);
    await jobs.sweep();

    expect(await jobs.sweep()).toBe(0);
    expect(await requestsOf(stale.job.id)).toHaveLength(2);
  });
});

describe('per-user conversion limits', () => {
  /** A service with these limits on the shared database, and a user with one video. */
  function limited(limits: Partial<ConversionLimits>) {
    const service = serviceOn(repo, { limits });
    const viewer = signIn();
    const video = upload(viewer);
    return { service, viewer, video, convert: () => service.convert(viewer, video.id, null) };
  }

  it('refuses a conversion over the active-job limit with QUOTA_EXCEEDED, the limit and the use, and writes nothing', async () => {
    const { service, viewer, video, convert } = limited({ activeJobs: 2 });
    await convert();
    await convert();
    const before = await outboxCount();

    const error = await failureOf(convert());

    expect(error.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'activeJobs', limit: 2, used: 2 });
    expect(error.message).toMatch(/2 conversions queued or running/);
    expect(await jobRowsFor(video.id)).toBe(2);
    expect(await outboxCount()).toBe(before);
    expect((await service.usage(viewer, viewer.userId)).conversionsLastHour).toBe(2);
  });

  it('lets one more start once an active job has finished or been cancelled', async () => {
    const { service, viewer, convert } = limited({ activeJobs: 2 });
    const first = await convert();
    const second = await convert();
    expect(await codeOf(convert())).toBe('QUOTA_EXCEEDED');

    await service.applyEvent(event('succeeded', first, { outputMediaId: randomUUID() }));
    await convert();
    expect(await codeOf(convert())).toBe('QUOTA_EXCEEDED');
    await service.cancel(viewer, second.id);

    expect((await convert()).status).toBe('QUEUED');
  });

  it('lets exactly the limit through when one user sends 10 conversions at once to two replicas', async () => {
    // Two services with pools of their own on one database: two jobs replicas racing for the same user.
    const replicas: JobsService[] = [];
    for (let i = 0; i < 2; i++) {
      const own = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger, connectionLimit: 6 });
      pools.push(own);
      replicas.push(serviceOn(new JobsRepository(own), { limits: { activeJobs: 5, dispatchedPerUser: 2 } }));
    }
    const viewer = signIn();
    const video = upload(viewer);

    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => replicas[i % 2]!.convert(viewer, video.id, null)),
    );

    const created = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as GraphQLError] : []));
    expect(created).toHaveLength(5);
    expect(refused.map((e) => [e.extensions.code, e.extensions.quota])).toEqual(
      Array.from({ length: 5 }, () => ['QUOTA_EXCEEDED', 'activeJobs']),
    );
    expect(await jobRowsFor(video.id)).toBe(5);
    // The dispatch limit held in the same race: two requests in the outbox, the other jobs waiting.
    const requests = await Promise.all(created.map(async (j) => (await requestsOf(j.id)).length));
    expect(requests.reduce((a, b) => a + b, 0)).toBe(2);
  });

  it('refuses the conversion over the hourly limit, retries included, with QUOTA_EXCEEDED conversionsPerHour', async () => {
    const { service, viewer, convert } = limited({ conversionsPerHour: 3 });
    const job = await convert();
    await service.applyEvent(event('failed', job, { error: failure }));
    await service.retry(viewer, job.id);
    await convert();

    const error = await failureOf(convert());
    expect(error.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'conversionsPerHour', limit: 3, used: 3 });
    expect(error.message).toMatch(/try again in (60|59) minutes/);

    await service.applyEvent(event('failed', job, { attempt: 2, error: failure }));
    expect(await codeOf(service.retry(viewer, job.id))).toBe('QUOTA_EXCEEDED');
    expect((await storedOrFail(job.id)).status).toBe('FAILED');
  });

  it('counts only the last hour: conversions started longer ago no longer count', async () => {
    const { viewer, convert } = limited({ conversionsPerHour: 2 });
    await convert();
    await convert();
    expect(await codeOf(convert())).toBe('QUOTA_EXCEEDED');

    await pool.query('UPDATE conversion_starts SET started_at = ? WHERE owner_id = ?', [
      new Date(Date.now() - 3600_000 - 1000),
      viewer.userId,
    ]);

    expect((await convert()).status).toBe('QUEUED');
  });

  it('refuses a retry over the active-job limit and leaves the job as it was', async () => {
    const { service, viewer, convert } = limited({ activeJobs: 1 });
    const failed = await convert();
    await service.applyEvent(event('failed', failed, { error: failure }));
    await convert();
    const before = await storedOrFail(failed.id);

    const error = await failureOf(service.retry(viewer, failed.id));

    expect(error.extensions).toMatchObject({ code: 'QUOTA_EXCEEDED', quota: 'activeJobs', limit: 1, used: 1 });
    expect(await storedOrFail(failed.id)).toEqual(before);
    expect(await requestsOf(failed.id)).toHaveLength(1);
  });

  it('shows the user their active jobs, conversions in the last hour and the limits, and nobody else', async () => {
    const { service, viewer, convert } = limited({ activeJobs: 4, conversionsPerHour: 9 });
    const done = await convert();
    await convert();
    await service.applyEvent(event('succeeded', done, { outputMediaId: randomUUID() }));

    expect(await service.usage(viewer, viewer.userId)).toEqual({
      userId: viewer.userId,
      activeJobs: 1,
      activeJobsLimit: 4,
      conversionsLastHour: 2,
      conversionsPerHourLimit: 9,
    });
    expect(await codeOf(service.usage(signIn(), viewer.userId))).toBe('NOT_FOUND');
    expect(await codeOf(service.usage(null, viewer.userId))).toBe('NOT_FOUND');
  });
});

describe('fair dispatching: a few requests per user in RabbitMQ at a time', () => {
  /** A user with `count` jobs queued one after the other, on a service sending at most 2 of a user's at once. */
  async function userWithJobs(count: number) {
    const service = serviceOn(repo, { limits: { dispatchedPerUser: 2 } });
    const viewer = signIn();
    const video = upload(viewer);
    const queued: JobRecord[] = [];
    for (let i = 0; i < count; i++) queued.push(await service.convert(viewer, video.id, null, `req-${i}`));
    return { service, viewer, queued };
  }

  /** The request a worker received for the job's first attempt, as RabbitMQ dead-letters it. */
  const requestOf = (job: JobRecord): ConversionRequest => ({
    jobId: job.id,
    attempt: 1,
    ownerId: job.ownerId,
    inputMediaId: job.inputMediaId,
    inputDurationSeconds: job.inputDurationSeconds,
    options: job.options,
  });

  const requested = async (jobs: JobRecord[]) =>
    Promise.all(jobs.map(async (j) => (await requestsOf(j.id)).map((r) => r.attempt)));

  it("sends the requests of a user's two oldest jobs; the others wait QUEUED with none", async () => {
    const { queued } = await userWithJobs(4);

    expect(await requested(queued)).toEqual([[1], [1], [], []]);
    expect(queued.map((j) => j.status)).toEqual(['QUEUED', 'QUEUED', 'QUEUED', 'QUEUED']);
    expect((await storedOrFail(queued[2]!.id)).dispatchedAt).toBeNull();
    expect((await requestsOf(queued[1]!.id))[0]?.requestId).toBe('req-1');
  });

  it.each([
    [
      'succeeds',
      (s: JobsService, _v: Viewer, j: JobRecord) =>
        s.applyEvent(event('succeeded', j, { outputMediaId: randomUUID() })),
    ],
    ['fails', (s: JobsService, _v: Viewer, j: JobRecord) => s.applyEvent(event('failed', j, { error: failure }))],
    ['is cancelled', (s: JobsService, v: Viewer, j: JobRecord) => s.cancel(v, j.id).then(() => undefined)],
    ['is dead-lettered', (s: JobsService, _v: Viewer, j: JobRecord) => s.failUndeliverable(requestOf(j), 'test')],
  ])("sends the oldest waiting job's request when one of the user's jobs %s", async (_, finish) => {
    const { service, viewer, queued } = await userWithJobs(4);
    await service.claim(queued[0]!.id, 1, 'worker-a', false);

    await finish(service, viewer, queued[0]!);

    expect(await requested(queued)).toEqual([[1], [1], [1], []]);
    expect((await storedOrFail(queued[2]!.id)).dispatchedAt).toBeInstanceOf(Date);
  });

  it('gives a free turn to the oldest waiting job, not to the job being created', async () => {
    const { service, viewer, queued } = await userWithJobs(3);
    // A sent job ends without its turn being given (as when a replica stopped between the two): a turn is free
    // while queued[2] still waits.
    await pool.execute("UPDATE jobs SET status = 'SUCCEEDED', finished_at = NOW(3) WHERE id = ?", [queued[0]!.id]);

    const created = await service.convert(viewer, queued[0]!.inputMediaId, null, 'req-new');

    expect(await requested([...queued, created])).toEqual([[1], [1], [1], []]);
    expect(created.dispatchedAt).toBeNull();
  });

  it("sends another user's job at once while the first user's jobs wait", async () => {
    const { queued } = await userWithJobs(5);
    const other = await userWithJobs(1);

    expect(await requested(other.queued)).toEqual([[1]]);
    expect(await requested(queued)).toEqual([[1], [1], [], [], []]);
  });

  it('never sends a waiting job that was cancelled, and a retried job waits its turn like a new one', async () => {
    const { service, viewer, queued } = await userWithJobs(4);
    await service.cancel(viewer, queued[3]!.id); // waiting: cancelled without ever being sent
    await service.cancel(viewer, queued[0]!.id); // frees a turn, which goes to queued[2]

    expect(await requested(queued)).toEqual([[1], [1], [1], []]);

    const retried = await service.retry(viewer, queued[0]!.id);
    expect(retried.dispatchedAt).toBeNull();
    expect(await requested([retried])).toEqual([[1]]);
    await service.applyEvent(event('succeeded', queued[1]!, { outputMediaId: randomUUID() }));
    expect(await requested([retried])).toEqual([[1, 2]]);
    expect(await requested([queued[3]!])).toEqual([[]]);
  });

  it('keeps a worker-side retry in its place: the job stays sent and no other is sent meanwhile', async () => {
    const { service, queued } = await userWithJobs(3);
    await service.claim(queued[0]!.id, 1, 'worker-a', false);

    await service.applyEvent(event('retrying', queued[0]!, { nextAttempt: 2, error: failure }));

    expect(await requested(queued)).toEqual([[1], [1], []]);
  });

  it("looks for a user's waiting jobs without waiting on a sent job a worker is claiming", async () => {
    const { viewer, queued } = await userWithJobs(3);
    // A claim of a sent job holds its row and next updates its status; the dispatch of the same user's next
    // job must not hold that job's index entries meanwhile (the two deadlocked, and the claim was refused).
    const claim = await pool.getConnection();
    const dispatch = await pool.getConnection();
    try {
      await claim.beginTransaction();
      await claim.query('SELECT id FROM jobs WHERE id = ? FOR UPDATE', [queued[1]!.id]);
      await dispatch.query('SET SESSION innodb_lock_wait_timeout = 2');
      await dispatch.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
      await dispatch.beginTransaction();

      const waiting = await repo.lockWaiting(dispatch, viewer.userId, 2);
      await claim.query("UPDATE jobs SET status = 'RUNNING' WHERE id = ?", [queued[1]!.id]);
      await claim.commit();
      await dispatch.commit();

      expect(waiting.map((j) => j.id)).toEqual([queued[2]!.id]);
    } finally {
      await claim.rollback().catch(() => undefined);
      await dispatch.rollback().catch(() => undefined);
      await dispatch.query('SET SESSION innodb_lock_wait_timeout = DEFAULT');
      claim.release();
      dispatch.release();
    }
  });

  it('gives a missed turn through the sweeper, and never re-sends a job that is only waiting', async () => {
    const { service, queued } = await userWithJobs(3);
    // The replica stopped between the job's end and its owner's next dispatch.
    await pool.query("UPDATE jobs SET status = 'SUCCEEDED' WHERE id = ?", [queued[0]!.id]);
    await pool.query('UPDATE jobs SET queued_at = ? WHERE id = ?', [
      new Date(Date.now() - SWEEP_AFTER_SECONDS * 10_000),
      queued[2]!.id,
    ]);
    expect(await requested([queued[2]!])).toEqual([[]]);

    await service.sweep();
    expect(await requested([queued[2]!])).toEqual([[]]);

    expect(await service.dispatchMissedTurns()).toBeGreaterThanOrEqual(1);
    expect(await requested(queued)).toEqual([[1], [1], [1]]);
  });
});
