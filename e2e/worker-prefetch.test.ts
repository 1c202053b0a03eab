// A worker holds PREFETCH requests but runs only CONCURRENCY ffmpeg processes: the next job is at hand when an
// ffmpeg ends, while the last output is still being stored. The requests it holds have not started: they stay
// QUEUED for their owner, can be cancelled without ever running, and go back to RabbitMQ at once when the
// worker stops.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it, onTestFailed } from 'vitest';
import { graphql, signUpUser, uploadFile, type SignedUp } from './client.js';
import { claimedBy, conversionsHeld, conversionsOf, ffmpegOf } from './conversions.js';
import { generateVideo } from './fixtures.js';
import { startSystem, type System } from './harness.js';

// Read at 8× real time, 48 s of video keep ffmpeg busy for about 6 s: long enough to look at what is held.
const READRATE = '8';
const SECONDS = 48;

let system: System;
let alice: SignedUp;
let videoId: string;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-prefetch-'));
  const video = join(dir, 'video.mp4');
  await generateVideo(video, SECONDS);
  system = await startSystem(
    {
      jobs: { MAX_DISPATCHED_PER_USER: '10', MAX_ACTIVE_JOBS_PER_USER: '10' },
      // A grace period long enough for the running conversion to finish when its worker is stopped.
      worker: { READRATE, CONCURRENCY: '1', PREFETCH: '2', SHUTDOWN_GRACE_SECONDS: '60' },
    },
    { workers: 1 },
  );
  alice = await signUpUser(system.gatewayUrl);
  const res = await uploadFile(system.gatewayUrl, video, { token: alice.token });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  videoId = res.data!.uploadVideo.id;
}, 120_000);
afterAll(async () => {
  await system?.stop();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

interface JobView {
  id: string;
  status: string;
  progress: number;
  attempts: number;
  startedAt: string | null;
  finishedAt: string | null;
  output: { id: string } | null;
}
const FIELDS = 'id status progress attempts startedAt finishedAt output { id }';

const conversions = conversionsOf<JobView>(
  () => system,
  () => alice,
  FIELDS,
);
const convert = () => conversions.convert(videoId);
const job = (id: string) => conversions.job(id);
const waitFor = (id: string, done: (j: JobView) => boolean, timeout = 60_000) => conversions.waitFor(id, done, timeout);
const held = conversionsHeld;

const claimedByWorker = (jobId: string) => claimedBy(system, jobId);

it('holds the next request while one ffmpeg runs, leaves that job QUEUED, and cancels it without running it', async () => {
  const worker = system.services.worker1!;
  const running = await convert();
  const next = await convert();
  await waitFor(running, (j) => j.status === 'RUNNING' && j.progress > 0);
  await expect.poll(() => held(worker), { timeout: 15_000, interval: 100 }).toBe(2);
  expect(await ffmpegOf(worker)).toBe(1);
  expect(await job(next)).toMatchObject({ status: 'QUEUED', startedAt: null });

  const cancelled = await graphql<{ cancelJob: JobView }>(
    system.gatewayUrl,
    'mutation ($id: ID!) { cancelJob(id: $id) { status } }',
    { token: alice.token, variables: { id: next } },
  );
  expect(cancelled.data?.cancelJob.status).toBe('CANCELLED');
  await waitFor(running, (j) => j.status === 'SUCCEEDED');
  // The worker let go of the cancelled request; it never ran.
  await expect.poll(() => held(worker), { timeout: 15_000, interval: 100 }).toBe(0);
  expect(await job(next)).toMatchObject({ status: 'CANCELLED', startedAt: null, output: null, attempts: 1 });
  expect(await claimedByWorker(next)).toBeNull();
}, 120_000);

it('hands a held request back at once when its worker stops, to be converted elsewhere while the running one finishes', async () => {
  const holder = system.services.worker1!;
  const running = await convert();
  const next = await convert();
  await waitFor(running, (j) => j.status === 'RUNNING' && j.progress > 0);
  await expect.poll(() => held(holder), { timeout: 15_000, interval: 100 }).toBe(2);
  expect(await job(next)).toMatchObject({ status: 'QUEUED', startedAt: null });
  // Another worker, idle: the queue is empty, both requests are with the first one.
  const other = await system.startWorker();
  expect(await held(other)).toBe(0);

  const exited = new Promise<number | null>((resolve) => holder.child.once('exit', (code) => resolve(code)));
  holder.child.kill('SIGTERM');
  // The held request runs on the other worker while the stopped one is still finishing its conversion.
  await waitFor(next, (j) => j.status === 'RUNNING');
  expect((await job(running)).status).toBe('RUNNING');
  await waitFor(running, (j) => j.status === 'SUCCEEDED');
  await waitFor(next, (j) => j.status === 'SUCCEEDED');
  expect(await exited).toBe(0);
  const [runningJob, nextJob] = [await job(running), await job(next)];
  expect(Date.parse(nextJob.startedAt!)).toBeLessThan(Date.parse(runningJob.finishedAt!));
  expect(await claimedByWorker(running)).toBe('e2e-worker-1');
  expect(await claimedByWorker(next)).toBe('e2e-worker-2');
}, 180_000);
