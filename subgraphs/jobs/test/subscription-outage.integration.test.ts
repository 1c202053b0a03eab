// A subscription outlives a database outage: a change heard while MariaDB is unreachable is read once it is
// back, rather than ending the subscription with an error (found by e2e/outage-drills.test.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLogger, openDatabase, type Logger, type Pool, type Viewer } from '@vidmp3/shared';
import { startTcpProxy, type TcpProxy } from '../../../e2e/lib/tcp-proxy.js';
import { JobsRepository } from '../src/adapters/jobs-repo.js';
import { MediaClient, type MediaFacts } from '../src/adapters/media-client.js';
import { migrations } from '../src/migrations.js';
import { ChangeBus } from '../src/services/change-bus.js';
import { JobFeeds } from '../src/services/job-feeds.js';
import { JobsService } from '../src/services/jobs.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_jobs_test_${randomBytes(6).toString('hex')}`;
const logger = createLogger('test', 'silent');
const limits = { activeJobs: 1000, conversionsPerHour: 1000, dispatchedPerUser: 1000 };

/** media's facts, as the test chose them. */
class StubMedia extends MediaClient {
  readonly facts = new Map<string, MediaFacts>();
  constructor() {
    super('http://127.0.0.1:9', 'unused-internal-token');
  }
  override async get(id: string): Promise<MediaFacts | null> {
    return this.facts.get(id) ?? null;
  }
}

let proxy: TcpProxy;
let direct: Pool;
let proxied: Pool;
const media = new StubMedia();
/** A replica's service and its subscriptions, on a pool and a change bus of their own. */
const service = (pool: Pool, bus: ChangeBus) => {
  const repo = new JobsRepository(pool);
  const jobs = new JobsService(repo, media, { kick() {} }, bus, {
    maxInputSeconds: 3600,
    sweepAfterSeconds: 30,
    limits,
  });
  // The feeds' warnings are how the test knows a re-read failed (the database away), without sleeping.
  const warn = vi.fn();
  const feedsLogger = { warn } as unknown as Logger;
  return Object.assign(jobs, {
    feeds: new JobFeeds(repo, bus, feedsLogger),
    readFailed: () => warn.mock.calls.length > 0,
  });
};

beforeAll(async () => {
  direct = await openDatabase({ url: `${SERVER}/${DATABASE}`, migrations, logger, connectionLimit: 2 });
  proxy = await startTcpProxy({ host: '127.0.0.1', port: 3306 });
  proxied = await openDatabase({
    url: `mysql://root@127.0.0.1:${proxy.port}/${DATABASE}`,
    migrations,
    logger,
    connectionLimit: 2,
  });
});
afterAll(async () => {
  await Promise.allSettled([proxied?.end(), direct?.end()]);
  await proxy?.close();
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

describe('a jobUpdated subscription while MariaDB is unreachable', () => {
  it('delivers the change it heard once the database is back', async () => {
    const watchedBus = new ChangeBus();
    const watching = service(proxied, watchedBus); // the replica the subscriber is on, behind the proxy
    const other = service(direct, new ChangeBus()); // another replica, which still reaches the database
    const viewer: Viewer = { userId: randomUUID(), token: 't', expiresAt: new Date(Date.now() + 3600_000) };
    const videoId = randomUUID();
    media.facts.set(videoId, {
      id: videoId,
      ownerId: viewer.userId,
      kind: 'VIDEO',
      filename: 'a.mp4',
      durationSeconds: 3,
    });
    const job = await other.convert(viewer, videoId, null);

    const updates = await watching.feeds.watchJob(viewer, job.id);
    expect((await updates.next()).value).toMatchObject({ jobUpdated: { status: 'QUEUED' } });

    // The other replica starts the job; its change reaches this replica while this one's database is away.
    await other.claim(job.id, 1, 'worker-a', false);
    proxy.cut('refuse');
    watchedBus.publish({ jobId: job.id, ownerId: viewer.userId });
    const next = updates.next();
    await expect.poll(() => watching.readFailed(), { timeout: 15_000 }).toBe(true); // it tried while away
    proxy.restore();

    expect((await next).value).toMatchObject({ jobUpdated: { id: job.id, status: 'RUNNING' } });
    await updates.return?.();
  });

  it('ends at once when the subscriber leaves while the database is away', async () => {
    const bus = new ChangeBus();
    const watching = service(proxied, bus);
    const viewer: Viewer = { userId: randomUUID(), token: 't', expiresAt: new Date(Date.now() + 3600_000) };
    const videoId = randomUUID();
    media.facts.set(videoId, {
      id: videoId,
      ownerId: viewer.userId,
      kind: 'VIDEO',
      filename: 'a.mp4',
      durationSeconds: 3,
    });
    const job = await service(direct, new ChangeBus()).convert(viewer, videoId, null);
    const updates = await watching.feeds.watchJob(viewer, job.id);
    await updates.next();

    proxy.cut('refuse');
    bus.publish({ jobId: job.id, ownerId: viewer.userId });
    const next = updates.next();
    await expect.poll(() => watching.readFailed(), { timeout: 15_000 }).toBe(true); // retrying the re-read
    await updates.return?.();
    // The re-read gives up (its error ends the pending next) instead of waiting for the database.
    await expect(next).rejects.toThrow();
    proxy.restore();
  });
});
