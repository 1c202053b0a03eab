// A running attempt is its worker's only while the worker reports (issue #12, defect 1): a worker that is frozen
// loses its job to another, which converts it once; a worker whose ffmpeg is silent (its input stalled) keeps
// its job by its heartbeat.
import { mkdtemp } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, expect, it, onTestFailed } from 'vitest';
import { graphql, signUpUser, uploadFile, type SignedUp } from './client.js';
import { generateVideo } from './fixtures.js';
import { MYSQL_SERVER, startSystem, stopService, type ServiceProcess, type System } from './harness.js';

// A short lease, so that a frozen worker loses its job within seconds (workers heartbeat every third of it).
const LEASE_SECONDS = 3;
// 24 s of video read at 4× real time: a conversion lasts about 6 s, several leases.
const READRATE = '4';
const LONG_SECONDS = 24;

let system: System;
let alice: SignedUp;
let longVideo: string;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vidmp3-leases-'));
  longVideo = join(dir, 'long.mp4');
  await generateVideo(longVideo, LONG_SECONDS);
  system = await startSystem({ jobs: { LEASE_SECONDS: String(LEASE_SECONDS) }, worker: { READRATE } }, { workers: 0 });
  alice = await signUpUser(system.gatewayUrl);
}, 120_000);
afterAll(async () => {
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

interface JobView {
  status: string;
  progress: number;
  attempts: number;
  output: { id: string } | null;
}

async function convertLongVideo(): Promise<string> {
  const uploaded = await uploadFile(system.gatewayUrl, longVideo, { token: alice.token });
  expect(uploaded.errors, JSON.stringify(uploaded.errors)).toBeUndefined();
  const converted = await graphql<{ convertMedia: { id: string } }>(
    system.gatewayUrl,
    'mutation ($id: ID!) { convertMedia(mediaId: $id) { id } }',
    { token: alice.token, variables: { id: uploaded.data!.uploadVideo.id } },
  );
  expect(converted.errors, JSON.stringify(converted.errors)).toBeUndefined();
  return converted.data!.convertMedia.id;
}

const job = async (id: string) =>
  (
    await graphql<{ job: JobView }>(
      system.gatewayUrl,
      'query ($id: ID!) { job(id: $id) { status progress attempts output { id } } }',
      { token: alice.token, variables: { id } },
    )
  ).data!.job;

const waitFor = (id: string, done: (j: JobView) => boolean, timeout = 60_000) =>
  expect.poll(() => job(id), { timeout, interval: 200 }).toSatisfy(done);

async function queryOne<T>(database: string, sql: string, params: unknown[]): Promise<T> {
  const conn = await mysql.createConnection(`${MYSQL_SERVER}/${database}`);
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(sql, params);
    return rows[0] as T;
  } finally {
    await conn.end();
  }
}

/** The mp3s media stores for this job. */
const outputsOf = async (jobId: string) =>
  Number(
    (await queryOne<{ n: number }>(system.databases.media, 'SELECT COUNT(*) AS n FROM media WHERE job_id = ?', [jobId]))
      .n,
  );

const workerOf = async (jobId: string) =>
  (
    await queryOne<{ claimed_by: string | null }>(system.databases.jobs, 'SELECT claimed_by FROM jobs WHERE id = ?', [
      jobId,
    ])
  ).claimed_by;

it('takes a job back from a worker frozen (SIGSTOP) longer than its lease; another converts it once', async () => {
  const frozen = await system.startWorker();
  const id = await convertLongVideo();
  await waitFor(id, (j) => j.status === 'RUNNING' && j.progress > 0.1);
  expect(await workerOf(id)).toBe(frozen.env.WORKER_ID);

  frozen.child.kill('SIGSTOP');
  let other: ServiceProcess | undefined;
  try {
    other = await system.startWorker();
    // Taken back at attempt 2, and converted by the worker still reporting.
    await waitFor(id, (j) => j.status === 'SUCCEEDED', 90_000);
    expect(await job(id)).toMatchObject({
      status: 'SUCCEEDED',
      attempts: 2,
      output: { id: expect.any(String) as string },
    });
    expect(await workerOf(id)).toBe(other.env.WORKER_ID);
  } finally {
    frozen.child.kill('SIGCONT');
  }
  // The frozen worker wakes up still holding attempt 1: whatever it does then is stale.
  await expect
    .poll(() => frozen.logs.some((l) => l.includes(id) && /conversion (succeeded|failed)|retrying later/.test(l)), {
      timeout: 60_000,
      interval: 250,
    })
    .toBe(true);
  expect(await job(id)).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
  expect(await outputsOf(id)).toBe(1);
  // The next test runs its own worker alone.
  await stopService(frozen);
  if (other) await stopService(other);
}, 180_000);

/**
 * A TCP proxy in front of media whose answers the test can hold back: the worker's ffmpeg then reads nothing
 * and prints no progress, though the worker is well. Answers are passed on at a trickle, so that nothing
 * sits in socket buffers: held back, ffmpeg starves at once.
 */
async function stallingProxy(target: URL): Promise<{ url: string; stall(on: boolean): void; close(): Promise<void> }> {
  // Every 100 ms: 25 KB/s, slower than ffmpeg reads the sample at READRATE (about 70 KB/s), so ffmpeg waits
  // for every byte and nothing piles up ahead of it.
  const BYTES_PER_TICK = 2500;
  const connections = new Set<{ client: Socket; upstream: Socket; timer: NodeJS.Timeout }>();
  let stalled = false;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    let pending = Buffer.alloc(0);
    const timer = setInterval(() => {
      if (stalled || pending.length === 0) return;
      client.write(pending.subarray(0, BYTES_PER_TICK));
      pending = pending.subarray(BYTES_PER_TICK);
      if (pending.length < 4 * BYTES_PER_TICK) upstream.resume();
    }, 100);
    const connection = { client, upstream, timer };
    connections.add(connection);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length >= 4 * BYTES_PER_TICK) upstream.pause();
    });
    const close = () => {
      connections.delete(connection);
      clearInterval(timer);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    // Whatever is still pending goes out before the client is closed.
    upstream.on('error', close).on('end', () => {
      const drain = setInterval(() => {
        if (pending.length > 0) return;
        clearInterval(drain);
        client.end();
      }, 100);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stall(on) {
      stalled = on;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const { client, upstream, timer } of connections) {
          clearInterval(timer);
          client.destroy();
          upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

it('keeps a job with its worker while ffmpeg prints no progress for longer than the lease (heartbeat)', async () => {
  const proxy = await stallingProxy(new URL(system.services.media!.url));
  try {
    const worker = await system.startWorker({ MEDIA_INTERNAL_URL: proxy.url });
    const id = await convertLongVideo();
    await waitFor(id, (j) => j.status === 'RUNNING' && j.progress > 0.1);

    proxy.stall(true);
    // Three leases without a byte of input: the job stays this worker's attempt 1.
    await new Promise((resolve) => setTimeout(resolve, 3 * LEASE_SECONDS * 1000));
    expect(await job(id)).toMatchObject({ status: 'RUNNING', attempts: 1 });
    proxy.stall(false);

    await waitFor(id, (j) => j.status === 'SUCCEEDED', 90_000);
    expect(await job(id)).toMatchObject({ attempts: 1 });
    expect(await workerOf(id)).toBe(worker.env.WORKER_ID);
    expect(await outputsOf(id)).toBe(1);
  } finally {
    await proxy.close();
  }
}, 180_000);
