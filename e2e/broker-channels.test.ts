// A RabbitMQ channel whose setup fails must not end a service, and must come back by itself: issue #12, defect 2.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import amqplib from 'amqplib';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { Topology } from '@vidmp3/shared';
import { graphql, signUpUser, uploadFile, type SignedUp } from './client.js';
import { sample } from './fixtures.js';
import { startSystem, type System } from './harness.js';

const run = promisify(execFile);

let system: System;
let alice: SignedUp;

beforeAll(async () => {
  system = await startSystem({}, { workers: 1 });
  alice = await signUpUser(system.gatewayUrl);
}, 120_000);
afterAll(async () => {
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

async function withAdmin(work: (channel: amqplib.Channel) => Promise<unknown>): Promise<void> {
  const admin = await amqplib.connect(system.rabbitmqUrl);
  try {
    await work(await admin.createChannel());
  } finally {
    await admin.close();
  }
}

const readiness = async (url: string) => (await fetch(`${url}/readyz`)).status;

describe('a RabbitMQ channel whose setup the broker refuses', () => {
  it('leaves jobs and the worker running and not ready, and they recover on their own once the cause is gone', async () => {
    const jobs = system.services.jobs!;
    const worker = system.services.worker1!;
    // The events queue re-declared with other arguments than every service declares it with: each channel's
    // setup gets 406 PRECONDITION_FAILED from now on (over a connection of the test's own, closed before).
    await withAdmin(async (ch) => {
      await ch.deleteQueue(Topology.eventsQueue);
      await ch.assertQueue(Topology.eventsQueue, { durable: true, arguments: { 'x-max-length': 1 } });
    });
    await run('rabbitmqctl', ['-q', 'close_all_connections', '--vhost', system.vhost, 'e2e: channel setups fail']);

    await expect.poll(() => readiness(jobs.url), { timeout: 15_000 }).toBe(503);
    await expect.poll(() => readiness(worker.url), { timeout: 15_000 }).toBe(503);
    await expect.poll(() => system.logs(), { timeout: 15_000 }).toMatch(/RabbitMQ channel setup failed/);
    // Still there: the setup's failure was reported, not thrown at the process.
    expect(jobs.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();

    await withAdmin((ch) => ch.deleteQueue(Topology.eventsQueue));
    await expect.poll(() => readiness(jobs.url), { timeout: 60_000, interval: 250 }).toBe(200);
    await expect.poll(() => readiness(worker.url), { timeout: 60_000, interval: 250 }).toBe(200);

    // And everything works again: a conversion goes through.
    const upload = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: alice.token });
    const created = await graphql<{ convertMedia: { id: string } }>(
      system.gatewayUrl,
      'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
      { token: alice.token, variables: { m: upload.data!.uploadVideo.id } },
    );
    await expect
      .poll(
        async () =>
          (
            await graphql<{ job: { status: string } }>(
              system.gatewayUrl,
              'query ($id: ID!) { job(id: $id) { status } }',
              {
                token: alice.token,
                variables: { id: created.data!.convertMedia.id },
              },
            )
          ).data?.job.status,
        { timeout: 60_000, interval: 250 },
      )
      .toBe('SUCCEEDED');
  });
});
