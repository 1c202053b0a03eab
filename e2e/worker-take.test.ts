// Without PREFETCH a worker takes a request only when one of its ffmpeg slots is free or about to be
// (LOOKAHEAD_MS): while it runs a long conversion, the next request stays in RabbitMQ, where a worker started
// meanwhile (or an idle one) takes it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it, onTestFailed } from 'vitest';
import { signUpUser, uploadFile, type SignedUp } from './client.js';
import { claimedBy, conversionsHeld, conversionsOf } from './conversions.js';
import { generateVideo } from './fixtures.js';
import { startSystem, type System } from './harness.js';

// Read at 8× real time, 96 s of video keep ffmpeg busy for about 12 s.
const READRATE = '8';
const SECONDS = 96;

let system: System;
let alice: SignedUp;
let videoId: string;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-take-'));
  const video = join(dir, 'video.mp4');
  await generateVideo(video, SECONDS);
  system = await startSystem(
    {
      jobs: { MAX_DISPATCHED_PER_USER: '10', MAX_ACTIVE_JOBS_PER_USER: '10' },
      worker: { READRATE, CONCURRENCY: '1' },
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
  startedAt: string | null;
  finishedAt: string | null;
}
const FIELDS = 'id status progress startedAt finishedAt';

const conversions = conversionsOf<JobView>(
  () => system,
  () => alice,
  FIELDS,
);
const convert = () => conversions.convert(videoId);
const job = (id: string) => conversions.job(id);
const waitFor = (id: string, done: (j: JobView) => boolean, timeout = 90_000) => conversions.waitFor(id, done, timeout);
const held = conversionsHeld;

const claimedByWorker = (jobId: string) => claimedBy(system, jobId);

it('leaves the next request in RabbitMQ while a long conversion runs, for another worker to convert', async () => {
  const busy = system.services.worker1!;
  const running = await convert();
  const next = await convert();
  await waitFor(running, (j) => j.status === 'RUNNING' && j.progress > 0);
  expect(await held(busy)).toBe(1);
  expect(await job(next)).toMatchObject({ status: 'QUEUED', startedAt: null });

  const other = await system.startWorker();
  await waitFor(next, (j) => j.status === 'SUCCEEDED');
  await waitFor(running, (j) => j.status === 'SUCCEEDED');
  const [runningJob, nextJob] = [await job(running), await job(next)];
  expect(Date.parse(nextJob.startedAt!)).toBeLessThan(Date.parse(runningJob.finishedAt!));
  expect(await claimedByWorker(running)).toBe('e2e-worker-1');
  expect(await claimedByWorker(next)).toBe('e2e-worker-2');
  expect(await held(other)).toBe(0);
}, 180_000);
