// Per-user conversion limits and fair scheduling, through the gateway with the real workers: one account that
// queues all it may must not hold up another account's single job by more than a few jobs.
import { afterAll, beforeAll, beforeEach, expect, it, onTestFailed } from 'vitest';
import { graphql, signUpUser, uploadFile, type SignedUp } from './client.js';
import { sample } from './fixtures.js';
import { startSystem, type System } from './harness.js';

const ACTIVE_LIMIT = 6;
const DISPATCHED_PER_USER = 2;

let system: System;
let alice: SignedUp;
let bob: SignedUp;

beforeAll(async () => {
  system = await startSystem(
    {
      jobs: {
        MAX_ACTIVE_JOBS_PER_USER: String(ACTIVE_LIMIT),
        MAX_DISPATCHED_PER_USER: String(DISPATCHED_PER_USER),
        MAX_CONVERSIONS_PER_HOUR: '30',
      },
      worker: { CONCURRENCY: '1' },
    },
    // The one worker starts once every job is queued, so the order the queue holds them in decides everything.
    { workers: 0 },
  );
  [alice, bob] = await Promise.all([signUpUser(system.gatewayUrl), signUpUser(system.gatewayUrl)]);
}, 120_000);
afterAll(async () => {
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

interface JobTimes {
  id: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
}

async function uploadVideo(user: SignedUp): Promise<string> {
  const res = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: user.token });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.uploadVideo.id;
}

const convert = (user: SignedUp, mediaId: string) =>
  graphql<{ convertMedia: { id: string } }>(
    system.gatewayUrl,
    'mutation ($id: ID!) { convertMedia(mediaId: $id) { id } }',
    {
      token: user.token,
      variables: { id: mediaId },
    },
  );

async function jobTimes(user: SignedUp, id: string): Promise<JobTimes | undefined> {
  const res = await graphql<{ job: JobTimes }>(
    system.gatewayUrl,
    'query ($id: ID!) { job(id: $id) { id status startedAt finishedAt } }',
    { token: user.token, variables: { id } },
  );
  return res.data?.job;
}

const usage = async (user: SignedUp) =>
  (
    await graphql<{ me: { usage: Record<string, number> } }>(
      system.gatewayUrl,
      '{ me { usage { activeJobs activeJobsLimit conversionsLastHour conversionsPerHourLimit } } }',
      { token: user.token },
    )
  ).data?.me.usage;

it("runs another user's single job after at most a few of a flooding user's jobs, and refuses the flood past its limit", async () => {
  const [aliceVideo, bobVideo] = await Promise.all([uploadVideo(alice), uploadVideo(bob)]);
  const aliceJobs: string[] = [];
  for (let i = 0; i < ACTIVE_LIMIT; i++) {
    const res = await convert(alice, aliceVideo);
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    aliceJobs.push(res.data!.convertMedia.id);
  }
  const refused = await convert(alice, aliceVideo);
  expect(refused.errors?.[0]?.extensions).toMatchObject({
    code: 'QUOTA_EXCEEDED',
    quota: 'activeJobs',
    limit: ACTIVE_LIMIT,
    used: ACTIVE_LIMIT,
  });
  expect(await usage(alice)).toEqual({
    activeJobs: ACTIVE_LIMIT,
    activeJobsLimit: ACTIVE_LIMIT,
    conversionsLastHour: ACTIVE_LIMIT,
    conversionsPerHourLimit: 30,
  });
  const bobRes = await convert(bob, bobVideo);
  expect(bobRes.errors, JSON.stringify(bobRes.errors)).toBeUndefined();
  const bobJob = bobRes.data!.convertMedia.id;

  // Alice's jobs beyond her first two wait in MariaDB, and operators can see them doing so.
  await expect
    .poll(async () => (await fetch(`${system.services.jobs!.url}/metrics`)).text(), { timeout: 15_000 })
    .toMatch(new RegExp(`^vidmp3_jobs_waiting_turn(\\{[^}]*\\})? ${ACTIVE_LIMIT - DISPATCHED_PER_USER}$`, 'm'));

  await system.startWorker();
  const finished = async (user: SignedUp, id: string) => {
    await expect
      .poll(async () => (await jobTimes(user, id))?.status, { timeout: 90_000, interval: 250 })
      .toBe('SUCCEEDED');
    return (await jobTimes(user, id))!;
  };
  const bobDone = await finished(bob, bobJob);
  const aliceDone: JobTimes[] = [];
  for (const id of aliceJobs) aliceDone.push(await finished(alice, id));

  // Bob's job waited behind at most Alice's first DISPATCHED_PER_USER jobs (plus one, for slack); every other
  // job of hers started after his. Without fair dispatch, all of hers would run before his. (Started, not
  // finished: a worker claims its next job while the ffmpeg before it ends, so the two overlap a little.)
  const at = (iso: string | null) => Date.parse(iso ?? '');
  const aliceBeforeBob = aliceDone.filter((j) => at(j.startedAt) < at(bobDone.startedAt));
  expect(aliceBeforeBob.length).toBeLessThanOrEqual(DISPATCHED_PER_USER + 1);
  expect(await usage(alice)).toMatchObject({ activeJobs: 0, conversionsLastHour: ACTIVE_LIMIT });
}, 180_000);
