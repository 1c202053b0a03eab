// The transient-failure chain, end to end with real faults in a real worker (issue #13): a conversion whose
// input cannot be reached waits out its delay in the retry queue and comes back as its next attempt; once the
// attempts are spent the job fails with GAVE_UP and the request is dead-lettered. A request that crashes its
// worker on every delivery is dead-lettered by RabbitMQ itself once its quorum queue's `x-delivery-limit` is
// passed, and its job fails with DELIVERY_LIMIT. The fault is real each time: media unreachable for one worker
// (a proxy of the test's own that refuses every connection), workers killed with SIGKILL.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqplib from 'amqplib';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { RETRY_DELAYS_MS, Topology } from '@vidmp3/shared';
import { graphql, signUpUser, uploadFile, type SignedUp } from './client.js';
import { claimedBy, conversionsOf } from './conversions.js';
import { generateVideo, sample } from './fixtures.js';
import { startSystem, stopService, type ServiceProcess, type System } from './harness.js';
import { startTcpProxy, type TcpProxy } from './lib/tcp-proxy.js';

/** The test's own queue on the dead-letter exchange: it gets a copy of every request dead-lettered. */
const DEAD_LETTER_COPY = 'e2e.dead-letter-copy';

let system: System;
let alice: SignedUp;
let shortVideoId: string;
let longVideoId: string;
let dir: string;
let admin: amqplib.ChannelModel;
let channel: amqplib.Channel;
/** Media, as the faulty workers reach it: through a proxy that refuses every connection. */
let mediaProxy: TcpProxy;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-transient-'));
  const longVideo = join(dir, 'long.mp4');
  // Read at real time by the workers of the delivery-limit test: a conversion still running when it is killed.
  await generateVideo(longVideo, 60, { faststart: true });
  // No worker yet: each test starts the workers it needs, with the fault it needs.
  system = await startSystem({}, { workers: 0 });
  alice = await signUpUser(system.gatewayUrl);
  shortVideoId = await upload(await sample('faststart.mp4'));
  longVideoId = await upload(longVideo);
  admin = await amqplib.connect(system.rabbitmqUrl);
  channel = await admin.createChannel();
  // Declared by jobs at its start: a copy of each dead letter, since jobs consumes the dead-letter queue.
  await channel.assertQueue(DEAD_LETTER_COPY, { exclusive: true });
  await channel.bindQueue(DEAD_LETTER_COPY, Topology.deadLetterExchange, Topology.conversionsQueue);
  mediaProxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(system.services.media!.url).port) });
  mediaProxy.cut('refuse');
}, 120_000);
afterAll(async () => {
  await admin?.close();
  await mediaProxy?.close();
  await system?.stop();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

async function upload(path: string): Promise<string> {
  const res = await uploadFile(system.gatewayUrl, path, { token: alice.token });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.uploadVideo.id;
}

interface JobView {
  id: string;
  status: string;
  attempts: number;
  error: { code: string; message: string } | null;
  output: { id: string } | null;
}
const conversions = conversionsOf<JobView>(
  () => system,
  () => alice,
  'id status attempts error { code message } output { id }',
);
const isFinal = (job: JobView) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.status);

/** The job as its owner sees it through the API, each distinct state recorded, until it is final. */
function watch(jobId: string): { states: JobView[]; final: Promise<JobView> } {
  const states: JobView[] = [];
  const final = (async () => {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const job = await conversions.job(jobId);
      const last = states.at(-1);
      if (
        !last ||
        last.status !== job.status ||
        last.attempts !== job.attempts ||
        last.error?.code !== job.error?.code
      ) {
        states.push(job);
      }
      if (isFinal(job)) return job;
      if (Date.now() > deadline) throw new Error(`job ${jobId} did not end: ${JSON.stringify(states)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  final.catch(() => undefined); // awaited by the test; a failure before then is not unhandled
  return { states, final };
}

/** Messages ready in a queue (not those a consumer holds). */
const messagesIn = async (queue: string) => (await channel.checkQueue(queue)).messageCount;

interface DeadLetter {
  request: { jobId: string; attempt: number };
  /** Why and from where it was dead-lettered, most recent first (RabbitMQ's `x-death`). */
  deaths: { queue: string; reason: string }[];
}
const deadLetters: DeadLetter[] = [];
/** The dead letters of a job so far (the copy queue drained into `deadLetters`). */
async function deadLettersOf(jobId: string): Promise<DeadLetter[]> {
  for (;;) {
    const msg = await channel.get(DEAD_LETTER_COPY, { noAck: true });
    if (msg === false) break;
    const deaths = (msg.properties.headers?.['x-death'] ?? []) as { queue: string; reason: string }[];
    deadLetters.push({
      request: JSON.parse(msg.content.toString('utf8')) as DeadLetter['request'],
      deaths: deaths.map(({ queue, reason }) => ({ queue, reason })),
    });
  }
  return deadLetters.filter((letter) => letter.request.jobId === jobId);
}

const logsOf = (service: ServiceProcess) => service.logs.join('\n');
/** Jobs' log line for a dead letter of the job it handled, with the reason it read. */
const handledDeadLetter = (jobId: string, reason: string) =>
  new RegExp(`"jobId":"${jobId}".*"reason":"${reason}","msg":"dead-lettered conversion request handled"`);

/** A worker that reaches media through the refusing proxy: every conversion fails for a transient reason. */
const startFaultyWorker = (maxAttempts: number) =>
  system.startWorker({ MEDIA_INTERNAL_URL: `http://127.0.0.1:${mediaProxy.port}`, MAX_ATTEMPTS: String(maxAttempts) });

/** Kills a process the hard way (a crash, the OOM killer) and waits for it to be gone. */
async function crash(service: ServiceProcess): Promise<void> {
  if (service.child.exitCode !== null || service.child.signalCode !== null) return;
  const exited = new Promise((resolve) => service.child.once('exit', resolve));
  service.child.kill('SIGKILL');
  await exited;
}

describe('a conversion that keeps failing for a transient reason', () => {
  let worker: ServiceProcess | undefined;
  afterAll(async () => {
    // Gone before the next tests, whose requests it must not take.
    if (worker) await stopService(worker);
    mediaProxy.cut('refuse');
  });

  it('is retried through the delay queue as its next attempt, then fails with GAVE_UP and is dead-lettered', async () => {
    // Two attempts: retried once, then given up.
    worker = await startFaultyWorker(2);
    const jobId = await conversions.convert(shortVideoId);
    const seen = watch(jobId);

    // Attempt 1 failed: its request waits out the first delay in the retry queue (no hot requeue), and the
    // owner sees the job queued again as attempt 2, with the reason.
    const retryQueue = Topology.retryQueue(RETRY_DELAYS_MS[0]);
    await expect.poll(() => messagesIn(retryQueue), { timeout: 60_000, interval: 50 }).toBe(1);
    const final = await seen.final;

    expect(final).toMatchObject({ status: 'FAILED', attempts: 2, output: null, error: { code: 'GAVE_UP' } });
    expect(final.error!.message).toMatch(/failed 2 times because of a temporary problem/);
    expect(seen.states).toContainEqual(
      expect.objectContaining({
        status: 'QUEUED',
        attempts: 2,
        error: {
          code: 'TEMPORARY_FAILURE',
          message: expect.stringMatching(/storage service was unavailable/) as string,
        },
      }),
    );
    // The attempts only count up.
    const attempts = seen.states.map((state) => state.attempts);
    expect(attempts).toEqual([...attempts].sort((a, b) => a - b));
    expect(await messagesIn(retryQueue)).toBe(0);

    // Each attempt ran and failed on the unreachable input: media's proxy was asked, and refused.
    expect(mediaProxy.accepted).toBeGreaterThanOrEqual(2);
    const log = logsOf(worker);
    expect(log.match(/conversion failed; retrying later/g)).toHaveLength(1);
    expect(log.match(/conversion failed on every attempt; giving up/g)).toHaveLength(1);

    // The last attempt's request is dead-lettered by the worker (rejected), for an operator to see and replay.
    await expect.poll(() => deadLettersOf(jobId), { timeout: 15_000, interval: 100 }).toHaveLength(1);
    const [letter] = await deadLettersOf(jobId);
    expect(letter!.request).toMatchObject({ jobId, attempt: 2 });
    // It had waited out the delay in the retry queue (expired) before it was rejected from the work queue.
    expect(letter!.deaths).toEqual([
      { queue: Topology.conversionsQueue, reason: 'rejected' },
      { queue: retryQueue, reason: 'expired' },
    ]);
    // Jobs consumed the dead-letter queue too, as a converter's give-up (its latest death), which the converter's
    // own `failed` event has recorded: the job keeps the reason it failed for.
    await expect
      .poll(() => logsOf(system.services.jobs!), { timeout: 15_000 })
      .toMatch(handledDeadLetter(jobId, 'rejected'));
    expect(await messagesIn(Topology.deadLetterQueue)).toBe(0);
    expect((await conversions.job(jobId)).error?.code).toBe('GAVE_UP');

    // The fault was the cause: with media reachable again the same job converts on the same worker.
    mediaProxy.restore();
    const retried = await graphql<{ retryJob: JobView }>(
      system.gatewayUrl,
      'mutation ($id: ID!) { retryJob(id: $id) { status attempts } }',
      { token: alice.token, variables: { id: jobId } },
    );
    expect(retried.errors, JSON.stringify(retried.errors)).toBeUndefined();
    await conversions.waitFor(jobId, (job) => job.status === 'SUCCEEDED', 60_000);
    expect(await conversions.job(jobId)).toMatchObject({
      attempts: 3,
      error: null,
      output: { id: expect.any(String) as string },
    });
  }, 180_000);
});

describe('a request that crashes its worker on every delivery', () => {
  let scratch: string;
  beforeAll(async () => {
    // Killed workers leave their partial mp3s behind: in a directory of the test's own.
    scratch = await mkdtemp(join(tmpdir(), 'vidmp3-transient-scratch-'));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('is dead-lettered by RabbitMQ once redelivered past x-delivery-limit, and its job fails with DELIVERY_LIMIT', async () => {
    // Its first attempt fails for a transient reason, as any attempt after the first has been queued: the request
    // for attempt 2 comes out of a retry queue, dead-lettered there once already (expired).
    const faulty = await startFaultyWorker(3);
    const jobId = await conversions.convert(longVideoId);
    const retryQueue = Topology.retryQueue(RETRY_DELAYS_MS[0]);
    await expect.poll(() => messagesIn(retryQueue), { timeout: 60_000, interval: 50 }).toBe(1);
    // It holds nothing now (the request waits in the retry queue): stopped, it leaves the rest to the others.
    await stopService(faulty);
    await conversions.waitFor(jobId, (job) => job.status === 'QUEUED' && job.attempts === 2, 15_000);

    let deliveries = 0;
    for (;;) {
      // A worker takes the request, claims it, starts converting — and dies (SIGKILL: nothing is settled).
      const worker = await system.startWorker({ READRATE: '1', SCRATCH_DIR: scratch });
      await expect.poll(() => claimedBy(system, jobId), { timeout: 30_000, interval: 50 }).toBe(worker.env.WORKER_ID);
      deliveries++;
      await crash(worker);
      // RabbitMQ has the request back: ready for the next worker, or given up on.
      let outcome: 'redelivered' | 'dead-lettered' | undefined;
      await expect
        .poll(
          async () => {
            if ((await deadLettersOf(jobId)).length > 0) outcome = 'dead-lettered';
            else if ((await messagesIn(Topology.conversionsQueue)) === 1) outcome = 'redelivered';
            return outcome;
          },
          { timeout: 15_000, interval: 50 },
        )
        .toBeDefined();
      if (outcome === 'dead-lettered') break;
      if (deliveries > Topology.deliveryLimit + 1) {
        throw new Error(`delivered ${deliveries} times: the delivery limit (${Topology.deliveryLimit}) did not apply`);
      }
    }
    // Redelivered more than x-delivery-limit times (RabbitMQ's definition): the first delivery and 5 more.
    expect(deliveries).toBe(Topology.deliveryLimit + 1);
    const [letter] = await deadLettersOf(jobId);
    expect(letter!.request).toMatchObject({ jobId, attempt: 2 });
    expect(letter!.deaths).toEqual([
      { queue: Topology.conversionsQueue, reason: 'delivery_limit' },
      { queue: retryQueue, reason: 'expired' },
    ]);
    expect(await messagesIn(Topology.conversionsQueue)).toBe(0);

    // Jobs fails the job on the dead letter: its owner sees why, and no worker will run it again.
    await conversions.waitFor(jobId, (job) => job.status === 'FAILED', 30_000);
    const job = await conversions.job(jobId);
    expect(job).toMatchObject({ attempts: 2, output: null, error: { code: 'DELIVERY_LIMIT' } });
    expect(job.error!.message).toMatch(/every delivery failed/);
    expect(logsOf(system.services.jobs!)).toMatch(handledDeadLetter(jobId, 'delivery_limit'));
    expect(await messagesIn(Topology.deadLetterQueue)).toBe(0);
  }, 240_000);
});
