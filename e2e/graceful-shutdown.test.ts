// Graceful shutdown's main paths (issue #13): on SIGTERM a worker with a long grace finishes the conversion it
// is running and takes nothing new; the gateway stops taking connections and lets an upload and a download in
// flight complete; and what is still running when the grace ends is cut, and the process exits.
// (A worker whose grace runs out hands its conversion back: e2e/jobs.test.ts, whose workers have a 1 s grace.)
import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, open, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqplib from 'amqplib';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { Topology } from '@vidmp3/shared';
import { signUpUser, uploadFile, type SignedUp, type UploadedMedia } from './client.js';
import { claimedBy, conversionsOf, ffmpegOf } from './conversions.js';
import { generateVideo, sample, sha256File } from './fixtures.js';
import { startService, type ServiceProcess, type System, startSystem } from './harness.js';

let system: System;
let alice: SignedUp;
let dir: string;
/** Converted at 4× real time: about 6 s of ffmpeg, long enough to stop its worker in the middle. */
let videoId: string;
/**
 * A valid mp4 grown to 64 MiB with a `free` box after its media data (players and ffprobe skip it): a
 * download of it cannot fit in the sockets' buffers, so it is still being sent while the client reads slowly.
 */
let bigPath: string;
let big: UploadedMedia;
/** The test's own services (gateways with the grace their test needs, subgraphs), stopped at the end. */
const ownServices: ServiceProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-shutdown-'));
  const video = join(dir, 'video.mp4');
  await generateVideo(video, 24, { faststart: true });
  bigPath = join(dir, 'big.mp4');
  await copyFile(await sample('faststart.mp4'), bigPath);
  await appendFreeBox(bigPath, 64 * 1024 * 1024);
  system = await startSystem({}, { workers: 0 });
  alice = await signUpUser(system.gatewayUrl);
  videoId = (await upload(video)).id;
  big = await upload(bigPath);
}, 120_000);
afterAll(async () => {
  for (const service of ownServices) if (service.child.exitCode === null) service.child.kill('SIGKILL');
  await system?.stop();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() =>
  onTestFailed(() => console.error(system.logs(), ownServices.map((s) => s.logs.join('\n')).join('\n'))),
);

async function upload(path: string): Promise<UploadedMedia> {
  const res = await uploadFile(system.gatewayUrl, path, { token: alice.token });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.uploadVideo;
}

/** Appends an mp4 `free` box of `bytes` zeros (its 8-byte header, then a sparse extension of the file). */
async function appendFreeBox(path: string, bytes: number): Promise<void> {
  const { size } = await stat(path);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(bytes + 8, 0);
  header.write('free', 4, 'latin1');
  await writeFile(path, header, { flag: 'a' });
  await truncate(path, size + 8 + bytes);
}

/** How a process ended; listened for before it is signalled. */
function exitOf(service: ServiceProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => service.child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Lines of a service's log matching `pattern`, with their positions (the process's own order of events). */
const lineOf = (service: ServiceProcess, pattern: RegExp) => service.logs.findIndex((line) => pattern.test(line));

/** Whether a new TCP connection to the service's port is refused (it stopped listening). */
function refusesConnections(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** Files in media's blob store, its temp directory included. */
async function storedFiles(): Promise<string[]> {
  const entries = await readdir(system.blobDir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** The bytes an upload sends before it waits to be released: enough to reach media's temp file. */
const HELD_AFTER_BYTES = 1024 * 1024;

/**
 * An upload (the GraphQL multipart request spec) whose body the test feeds: the operation and the first MiB of
 * the file, then nothing until `release()`. Reads the file as the connection takes it (no buffering here).
 */
async function heldUpload(gatewayUrl: string, path: string, token: string) {
  const { size } = await stat(path);
  const file = await open(path);
  const boundary = 'e2e-held-upload';
  const head =
    `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n` +
    JSON.stringify({
      query: 'mutation ($file: Upload!) { uploadVideo(file: $file) { id sha256 byteSize } }',
      variables: { file: null },
    }) +
    `\r\n--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.file"]}\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="held.mp4"\r\nContent-Type: video/mp4\r\n\r\n`;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let sent = -1; // -1: the head is still to go
  let closed = false;
  const closeFile = async () => {
    if (closed) return;
    closed = true;
    await file.close();
  };
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (sent < 0) {
          controller.enqueue(new TextEncoder().encode(head));
          sent = 0;
          return;
        }
        if (sent >= HELD_AFTER_BYTES) await released;
        if (closed) return;
        if (sent < size) {
          const limit = sent < HELD_AFTER_BYTES ? HELD_AFTER_BYTES : size;
          const chunk = Buffer.alloc(Math.min(256 * 1024, limit - sent));
          const { bytesRead } = await file.read(chunk, 0, chunk.length, sent);
          sent += bytesRead;
          controller.enqueue(chunk.subarray(0, bytesRead));
          return;
        }
        controller.enqueue(new TextEncoder().encode(`\r\n--${boundary}--\r\n`));
        controller.close();
        await closeFile();
      },
      cancel: closeFile,
    },
    { highWaterMark: 0 },
  );
  const response = fetch(`${gatewayUrl}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'apollo-require-preflight': 'true',
      authorization: `Bearer ${token}`,
    },
    body,
    duplex: 'half', // Node's fetch needs it for a streamed body; the DOM's RequestInit does not know it
  } as RequestInit).then(
    async (res) => ({ status: res.status, body: (await res.json()) as { data?: { uploadVideo: Uploaded } } }),
    (err: unknown) => ({ cut: err }),
  );
  // A cut upload leaves its body unread (and unreleased): its file is closed all the same.
  response.then(closeFile).catch(() => undefined);
  return { response, release };
}
interface Uploaded {
  id: string;
  sha256: string;
  byteSize: number;
}

/** Waits until a new file appears in media's store: the held upload's first bytes went through the gateway. */
async function reachedMedia(before: string[]): Promise<void> {
  await expect
    .poll(async () => (await storedFiles()).some((file) => !before.includes(file)), { timeout: 15_000, interval: 20 })
    .toBe(true);
}

/** A download that reads its first chunk and then nothing until `readRest()`: a slow client. */
function heldDownload(url: string): Promise<{
  status: number | undefined;
  readRest: () => Promise<{ bytes: number; sha256: string; complete: boolean }>;
}> {
  return new Promise((resolve, reject) => {
    // A connection of its own (no agent): the test's other requests cannot queue behind it.
    httpGet(url, { agent: false }, (res: IncomingMessage) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let ended = false;
      // Listened for from the start: a cut connection may end the response while the client is not reading.
      const closed = new Promise<void>((done) => res.once('close', done));
      res.on('error', () => undefined); // a cut connection: seen as an incomplete body
      res.once('end', () => (ended = true));
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.once('data', () => {
        res.pause();
        resolve({
          status: res.statusCode,
          readRest: async () => {
            res.resume();
            await closed;
            return { bytes, sha256: hash.digest('hex'), complete: ended && res.complete };
          },
        });
      });
    }).once('error', reject);
  });
}

/**
 * A gateway of the test's own (same subgraphs and keys as the system's), on a port of its own, run as it is
 * deployed: NODE_ENV=production (the harness's NODE_ENV=test turns Apollo Server's own signal handling off) and
 * /metrics on a port of its own, as the Kubernetes manifests set it.
 */
async function startGateway(graceSeconds: number): Promise<ServiceProcess> {
  const gateway = await startService(`gateway-grace-${graceSeconds}s`, 'gateway/dist/main.js', {
    ...system.services.gateway!.env,
    NODE_ENV: 'production',
    PORT: '0',
    METRICS_PORT: '0',
    SHUTDOWN_GRACE_SECONDS: String(graceSeconds),
  });
  ownServices.push(gateway);
  return gateway;
}

/** The signed download URL of the big media, on another gateway (the signature does not cover the origin). */
const downloadVia = (gateway: ServiceProcess) => {
  const url = new URL(big.downloadUrl);
  return `${gateway.url}${url.pathname}${url.search}`;
};

describe('a worker stopped with a grace long enough for its conversion', () => {
  interface JobView {
    id: string;
    status: string;
    progress: number;
    attempts: number;
    output: { id: string } | null;
  }
  const conversions = conversionsOf<JobView>(
    () => system,
    () => alice,
    'id status progress attempts output { id }',
  );

  it('finishes the running conversion, takes nothing new, and exits 0: the job succeeds on its first attempt', async () => {
    const worker = await system.startWorker({ SHUTDOWN_GRACE_SECONDS: '120', READRATE: '4' });
    const jobId = await conversions.convert(videoId);
    await conversions.waitFor(jobId, (job) => job.status === 'RUNNING' && job.progress > 0, 60_000);
    expect(await ffmpegOf(worker)).toBe(1);

    const exited = exitOf(worker);
    worker.child.kill('SIGTERM');
    await expect
      .poll(() => worker.logs.join('\n'), { timeout: 15_000 })
      .toMatch(/"running":1.*stopped taking work; letting running conversions finish/);
    // A request queued during the grace stays with RabbitMQ for the next worker.
    const queuedMeanwhile = await conversions.convert(videoId);

    expect(await exited).toEqual({ code: 0, signal: null });
    // The conversion was running when the shutdown began, and ended on this worker, stored and reported.
    const stopping = lineOf(worker, /stopped taking work/);
    const succeeded = lineOf(worker, new RegExp(`"jobId":"${jobId}".*conversion succeeded`));
    expect(stopping).toBeGreaterThanOrEqual(0);
    expect(succeeded).toBeGreaterThan(stopping);
    expect(worker.logs.join('\n')).not.toMatch(/handed back|grace period over/);
    await conversions.waitFor(jobId, (job) => job.status === 'SUCCEEDED', 15_000);
    expect(await conversions.job(jobId)).toMatchObject({ attempts: 1, output: { id: expect.any(String) as string } });
    expect(await claimedBy(system, jobId)).toBe(worker.env.WORKER_ID);

    // Nothing went back to RabbitMQ but the request queued during the grace, which the worker never took.
    expect(await conversions.job(queuedMeanwhile)).toMatchObject({ status: 'QUEUED', attempts: 1 });
    expect(await claimedBy(system, queuedMeanwhile)).toBeNull();
    const admin = await amqplib.connect(system.rabbitmqUrl);
    try {
      const channel = await admin.createChannel();
      await expect
        .poll(async () => (await channel.checkQueue(Topology.conversionsQueue)).messageCount, { timeout: 15_000 })
        .toBe(1);
      const waiting = await channel.get(Topology.conversionsQueue);
      expect(waiting && (JSON.parse(waiting.content.toString('utf8')) as { jobId: string }).jobId).toBe(
        queuedMeanwhile,
      );
      if (waiting) channel.nack(waiting, false, true);
    } finally {
      await admin.close();
    }
  }, 180_000);
});

describe('the gateway on SIGTERM', () => {
  it('refuses new connections but lets an upload and a download in flight complete within its grace, then exits 0', async () => {
    const gateway = await startGateway(60);
    const download = await heldDownload(downloadVia(gateway));
    expect(download.status).toBe(200);
    const before = await storedFiles();
    const upload = await heldUpload(gateway.url, bigPath, alice.token);
    await reachedMedia(before);

    const exited = exitOf(gateway);
    gateway.child.kill('SIGTERM');
    await expect.poll(() => refusesConnections(gateway.url), { timeout: 15_000, interval: 50 }).toBe(true);

    // Both still in flight: the rest of the upload is sent, the rest of the download read.
    upload.release();
    const [uploaded, downloaded] = await Promise.all([upload.response, download.readRest()]);
    const expectedSha = await sha256File(bigPath);
    const { size } = await stat(bigPath);
    expect(uploaded).toMatchObject({ status: 200 });
    expect('body' in uploaded && uploaded.body.data?.uploadVideo).toMatchObject({
      sha256: expectedSha,
      byteSize: size,
    });
    expect(downloaded).toEqual({ bytes: size, sha256: expectedSha, complete: true });
    expect(await exited).toEqual({ code: 0, signal: null });

    // The gateway's own log puts both answers after the start of its shutdown: they were drained, not done before.
    const shutdown = lineOf(gateway, /"msg":"shutting down"/);
    expect(shutdown).toBeGreaterThanOrEqual(0);
    expect(lineOf(gateway, /"method":"GET","path":"\/files\/[^"]+","status":200/)).toBeGreaterThan(shutdown);
    expect(lineOf(gateway, /"method":"POST","path":"\/graphql","status":200/)).toBeGreaterThan(shutdown);
  }, 120_000);

  it('cuts an upload and a download still running when the grace ends, keeps nothing of the upload, and exits', async () => {
    const gateway = await startGateway(2);
    const download = await heldDownload(downloadVia(gateway));
    expect(download.status).toBe(200);
    const before = await storedFiles();
    const upload = await heldUpload(gateway.url, bigPath, alice.token);
    await reachedMedia(before);

    const exited = exitOf(gateway);
    gateway.child.kill('SIGTERM');
    await expect.poll(() => refusesConnections(gateway.url), { timeout: 15_000, interval: 50 }).toBe(true);
    // The slow clients never catch up: the grace ends with both in flight.
    const uploaded = await upload.response;
    expect(uploaded).toEqual({ cut: expect.any(Error) as Error });
    const outcome = await exited;
    const downloaded = await download.readRest();
    expect(downloaded.complete).toBe(false);
    expect(downloaded.bytes).toBeLessThan((await stat(bigPath)).size);

    // The drain cut them and the gateway then closed as usual (not the backstop timer's exit 1).
    expect(outcome).toEqual({ code: 0, signal: null });
    expect(gateway.logs.join('\n')).not.toMatch(/shutdown grace period over/);
    // Media saw the upload cut off and kept nothing of it.
    await expect.poll(() => storedFiles(), { timeout: 15_000 }).toEqual(before);
  }, 120_000);
});

describe('the subgraphs on SIGTERM', () => {
  it('close and exit 0 when run as outside tests (NODE_ENV=development): users, media and jobs', async () => {
    for (const name of ['users', 'media', 'jobs']) {
      const running = system.services[name]!;
      // A second instance of each, on the system's databases and broker, stopped the way an orchestrator stops it.
      const instance = await startService(`${name}-development`, running.entry, {
        ...running.env,
        NODE_ENV: 'development',
        PORT: '0',
      });
      ownServices.push(instance);
      // Ready as an orchestrator sees it. (Its "ready" log line comes a moment before its SIGTERM handler is
      // installed: a signal in between ends it the default way.)
      await expect.poll(async () => (await fetch(`${instance.url}/readyz`)).status, { timeout: 15_000 }).toBe(200);
      const exited = exitOf(instance);
      instance.child.kill('SIGTERM');
      expect(await exited, `${name}:\n${instance.logs.join('\n')}`).toEqual({ code: 0, signal: null });
    }
  }, 120_000);
});
