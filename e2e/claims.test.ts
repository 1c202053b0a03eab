// A worker that cannot reach the jobs service must not spend the job's attempts: nothing ran, so the same
// attempt is asked for again later, and the job converts once jobs answers.
import { afterAll, beforeAll, beforeEach, expect, it, onTestFailed } from 'vitest';
import { graphql, signUpUser, uploadFile, type SignedUp } from './client.js';
import { sample } from './fixtures.js';
import { freePort, startSystem, stopService, type System } from './harness.js';

let system: System;
let alice: SignedUp;

beforeAll(async () => {
  system = await startSystem({}, { workers: 0 });
  alice = await signUpUser(system.gatewayUrl);
}, 120_000);
afterAll(async () => {
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

interface JobView {
  status: string;
  attempts: number;
  error: { code: string } | null;
  output: { id: string } | null;
}

const job = async (id: string) =>
  (
    await graphql<{ job: JobView }>(
      system.gatewayUrl,
      'query ($id: ID!) { job(id: $id) { status attempts error { code } output { id } } }',
      { token: alice.token, variables: { id } },
    )
  ).data!.job;

it('keeps a job queued, attempts unspent, while the worker cannot claim it, then converts it', async () => {
  // One attempt only: were a failed claim counted as a failed attempt, this job would fail for good.
  const cutOff = await system.startWorker({
    JOBS_INTERNAL_URL: `http://127.0.0.1:${await freePort()}`,
    MAX_ATTEMPTS: '1',
  });
  const uploaded = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: alice.token });
  const converted = await graphql<{ convertMedia: { id: string } }>(
    system.gatewayUrl,
    'mutation ($id: ID!) { convertMedia(mediaId: $id) { id } }',
    { token: alice.token, variables: { id: uploaded.data!.uploadVideo.id } },
  );
  const id = converted.data!.convertMedia.id;

  await expect
    .poll(() => cutOff.logs.some((line) => line.includes('asking again later')), { timeout: 15_000 })
    .toBe(true);
  expect(await job(id)).toMatchObject({ status: 'QUEUED', attempts: 1, error: null });

  await stopService(cutOff);
  await system.startWorker();
  await expect.poll(() => job(id), { timeout: 30_000, interval: 250 }).toMatchObject({ status: 'SUCCEEDED' });
  expect(await job(id)).toMatchObject({ attempts: 1, error: null, output: { id: expect.any(String) as string } });
}, 60_000);
