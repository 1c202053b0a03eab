import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connectBroker,
  createLogger,
  declareTopology,
  decodeMessage,
  encodeMessage,
  JobEvent,
  publishConfirmed,
  Topology,
  type AmqpConnectionManager,
  type ChannelWrapper,
  type ConversionRequest,
  type JobControl,
} from '@vidmp3/shared';
import { ConfigSchema } from '../src/config.js';
import type { JobsClient } from '../src/jobs-client.js';
import type { MediaClient } from '../src/media-client.js';
import type { transcode } from '../src/transcoder.js';
import { ConverterWorker } from '../src/worker.js';

// The worker against the real RabbitMQ (a virtual host of this file's own); jobs, media and ffmpeg are fakes,
// so that a test decides when a conversion ends.
const rabbitmqctl = promisify(execFile);
const SERVER = process.env.E2E_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const vhost = `vidmp3_worker_test_${randomBytes(4).toString('hex')}`;
const logger = createLogger('test', 'silent');

let connection: AmqpConnectionManager;
let channel: ChannelWrapper;
let scratch: string;
const events: JobEvent[] = [];
const eventWaiters = new Set<() => void>();

beforeAll(async () => {
  await rabbitmqctl('rabbitmqctl', ['-q', 'add_vhost', vhost]);
  await rabbitmqctl('rabbitmqctl', ['-q', 'set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
  connection = connectBroker(`${SERVER}/${vhost}`, logger);
  channel = connection.createChannel({
    confirm: true,
    setup: async (ch: Parameters<typeof declareTopology>[0]) => {
      await declareTopology(ch);
      await ch.consume(Topology.eventsQueue, (msg) => {
        if (!msg) return;
        events.push(decodeMessage(JobEvent, msg.content));
        ch.ack(msg);
        for (const wake of eventWaiters) wake();
      });
    },
  });
  await channel.waitForConnect();
  scratch = await mkdtemp(join(tmpdir(), 'vidmp3-worker-test-'));
});

afterAll(async () => {
  await channel?.close();
  await connection?.close();
  await rabbitmqctl('rabbitmqctl', ['-q', 'delete_vhost', vhost]).catch(() => undefined);
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

const workers: ConverterWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.close()));
  events.length = 0;
});

/** Resolves with the first event (from now on or already received) that matches. */
function eventOf(jobId: string, type: JobEvent['type']): Promise<JobEvent> {
  return new Promise((resolve) => {
    const check = () => {
      const found = events.find((e) => e.jobId === jobId && e.type === type);
      if (!found) return false;
      eventWaiters.delete(check);
      resolve(found);
      return true;
    };
    if (!check()) eventWaiters.add(check);
  });
}

/** A fake ffmpeg: runs until the test ends it (`finish`) or the worker aborts it. */
class FakeFfmpeg {
  readonly running = new Map<string, { finish: () => void; signal: AbortSignal }>();
  private readonly startWaiters = new Set<() => void>();

  readonly transcode: typeof transcode = (req) =>
    new Promise<void>((resolve, reject) => {
      this.running.set(jobIdOf(req.inputUrl), { finish: resolve, signal: req.signal });
      req.signal.addEventListener('abort', () => reject(new Error('ffmpeg killed')), { once: true });
      req.onStart?.();
      for (const wake of this.startWaiters) wake();
    });

  /** Resolves once the conversion of this job has started. */
  started(jobId: string): Promise<{ finish: () => void; signal: AbortSignal }> {
    return new Promise((resolve) => {
      const check = () => {
        const found = this.running.get(jobId);
        if (!found) return false;
        this.startWaiters.delete(check);
        resolve(found);
        return true;
      };
      if (!check()) this.startWaiters.add(check);
    });
  }
}

/** The fake media serves each input at a URL named after the job it belongs to (see `request`). */
const jobIdOf = (inputUrl: string) => decodeURIComponent(inputUrl.split('/').pop()!);

function startWorker(ffmpeg: FakeFfmpeg, env: Record<string, string> = {}): ConverterWorker {
  const settings = ConfigSchema.parse({ SCRATCH_DIR: scratch, CONCURRENCY: '2', ...env });
  const media = {
    contentUrl: (mediaId: string) => `http://media.invalid/${encodeURIComponent(mediaId)}`,
    authHeaders: () => ({}),
    uploadOutput: async (jobId: string) => ({ id: `out-${jobId}` }),
    ping: async () => true,
  } as unknown as MediaClient;
  const jobs = { claim: async () => ({ proceed: true }) } as unknown as JobsClient;
  const worker = new ConverterWorker({ connection, media, jobs, transcode: ffmpeg.transcode, logger, settings });
  workers.push(worker);
  return worker;
}

let jobCount = 0;
function request(attempt = 1): ConversionRequest {
  const jobId = `job-${++jobCount}-${randomBytes(3).toString('hex')}`;
  return {
    jobId,
    attempt,
    ownerId: 'owner-1',
    // The fake media names the input after the job, so the fake ffmpeg knows which job it converts.
    inputMediaId: jobId,
    inputDurationSeconds: 10,
    options: { bitrateKbps: 192, sampleRateHz: null, channels: null, startSeconds: null, endSeconds: null },
  };
}

const send = (req: ConversionRequest) =>
  publishConfirmed(channel, Topology.conversionsExchange, Topology.conversionsQueue, encodeMessage(req));
const cancel = (control: JobControl) => publishConfirmed(channel, Topology.controlExchange, '', encodeMessage(control));

describe('cancelling a conversion', () => {
  it('stops the attempt a cancel names, and leaves a later attempt of the same job alone', async () => {
    const ffmpeg = new FakeFfmpeg();
    const worker = startWorker(ffmpeg);
    await worker.start();
    const retried = request(2); // its attempt 1 was cancelled, then retried (retryJob) as attempt 2
    const other = request(1);
    await send(retried);
    await send(other);
    const retriedRun = await ffmpeg.started(retried.jobId);
    await ffmpeg.started(other.jobId);

    // The late cancel of attempt 1, then a cancel of the other job: control messages are handled in order,
    // so once the second has stopped its job, the first has been handled too.
    await cancel({ type: 'cancel', jobId: retried.jobId, attempt: 1 });
    await cancel({ type: 'cancel', jobId: other.jobId, attempt: 1 });
    expect(await eventOf(other.jobId, 'cancelled')).toMatchObject({ attempt: 1 });

    expect(retriedRun.signal.aborted).toBe(false);
    retriedRun.finish();
    expect(await eventOf(retried.jobId, 'succeeded')).toMatchObject({
      attempt: 2,
      outputMediaId: `out-${retried.jobId}`,
    });
    expect(events.filter((e) => e.jobId === retried.jobId && e.type === 'cancelled')).toEqual([]);
  });

  it('stops any attempt of the job on a cancel that names none (sent by an older jobs service)', async () => {
    const ffmpeg = new FakeFfmpeg();
    const worker = startWorker(ffmpeg);
    await worker.start();
    const req = request(3);
    await send(req);
    await ffmpeg.started(req.jobId);
    await cancel({ type: 'cancel', jobId: req.jobId });
    expect(await eventOf(req.jobId, 'cancelled')).toMatchObject({ attempt: 3 });
  });
});

describe('scratch files', () => {
  it('are swept when a worker starts: what a crashed worker left goes, what may still be in use stays', async () => {
    const crashed = join(scratch, 'left-by-a-crashed-worker.mp3');
    const recent = join(scratch, 'another-worker-converting.mp3');
    await writeFile(crashed, 'mp3');
    await writeFile(recent, 'mp3');
    // Older than the longest conversion (CONVERSION_TIMEOUT_SECONDS) and the margin.
    const longAgo = new Date(Date.now() - 2 * 3_600_000);
    await utimes(crashed, longAgo, longAgo);

    await startWorker(new FakeFfmpeg(), { CONVERSION_TIMEOUT_SECONDS: '60' }).start();
    expect(await readdir(scratch)).toEqual(['another-worker-converting.mp3']);
    await rm(recent);
  });
});
