import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readdir, readFile, readlink, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createClient, type Client } from 'graphql-ws';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed, vi } from 'vitest';
import WebSocket from 'ws';
import { errorCode, graphql, signUpUser, uploadFile, type SignedUp, type UploadedMedia } from './client.js';
import { claimedBy, ffmpegOf } from './conversions.js';
import { generateVideo, sample } from './fixtures.js';
import { MYSQL_SERVER, startSystem, type ServiceProcess, type System } from './harness.js';

const run = promisify(execFile);

// Workers read their input at this multiple of real time, so a conversion lasts long enough to watch,
// cancel or crash in the middle: 24 s of video take about 3 s.
const READRATE = '8';
const LONG_SECONDS = 24;

let system: System;
let alice: SignedUp;
let bob: SignedUp;
let longVideo: string;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vidmp3-jobs-'));
  longVideo = join(dir, 'long-moov-at-end.mp4');
  // mp4 with the moov atom at the end: the worker must read it over HTTP with seeking.
  await generateVideo(longVideo, LONG_SECONDS);
  // A short shutdown grace, so that a worker stopped mid-conversion hands its job back rather than finishing it.
  system = await startSystem({ worker: { READRATE, SHUTDOWN_GRACE_SECONDS: '1' } }, { workers: 2 });
  [alice, bob] = await Promise.all([signUpUser(system.gatewayUrl), signUpUser(system.gatewayUrl)]);
}, 120_000);
afterAll(async () => {
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

interface JobView {
  id: string;
  status: string;
  progress: number;
  attempts: number;
  error: { code: string; message: string } | null;
  owner: { email: string };
  input: { filename: string };
  output: { id: string; downloadUrl: string; durationSeconds: number | null } | null;
}

const JOB_FIELDS = `id status progress attempts error { code message } owner { email } input { filename }
  output { id downloadUrl durationSeconds }`;

async function upload(path: string, user = alice, filename?: string): Promise<UploadedMedia> {
  const res = await uploadFile(system.gatewayUrl, path, { token: user.token, ...(filename ? { filename } : {}) });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.uploadVideo;
}

async function convert(mediaId: string, options: Record<string, unknown> = {}, user = alice): Promise<JobView> {
  const res = await graphql<{ convertMedia: JobView }>(
    system.gatewayUrl,
    `mutation ($id: ID!, $options: ConversionOptions) { convertMedia(mediaId: $id, options: $options) { ${JOB_FIELDS} } }`,
    { token: user.token, variables: { id: mediaId, options } },
  );
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.convertMedia;
}

async function job(id: string, user = alice) {
  return graphql<{ job: JobView }>(system.gatewayUrl, `query ($id: ID!) { job(id: $id) { ${JOB_FIELDS} } }`, {
    token: user.token,
    variables: { id },
  });
}

const waitFor = (id: string, done: (j: JobView) => boolean, timeout = 60_000) =>
  expect
    .poll(async () => (await job(id)).data?.job, { timeout, interval: 200 })
    .toSatisfy((j: JobView | undefined) => j !== undefined && done(j));

/** `job` queries the jobs subgraph has answered so far (its /metrics). */
async function jobQueries(): Promise<number> {
  const text = await (await fetch(`${system.services.jobs!.url}/metrics`)).text();
  const series = text
    .split('\n')
    .filter((l) => l.startsWith('vidmp3_graphql_operations_total{'))
    .filter((l) => l.includes('type="query"') && l.includes('field="job"'));
  if (series.length !== 1) throw new Error(`expected one series of job queries in jobs' metrics, got ${series.length}`);
  return Number(series[0]!.split(' ').at(-1));
}

function subscriber(user: SignedUp): Client {
  return createClient({
    url: `${system.gatewayUrl.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${user.token}` },
    retryAttempts: 0,
  });
}

/** Every message of one subscription until it completes (or `stop` says enough). */
async function collect<T>(
  client: Client,
  query: string,
  variables: Record<string, unknown>,
  stop: (
    events: { data?: T | null; errors?: readonly { message: string; extensions?: { code?: string } }[] }[],
  ) => boolean = () => false,
) {
  const events: { data?: T | null; errors?: readonly { message: string; extensions?: { code?: string } }[] }[] = [];
  const iterator = client.iterate<T>({ query, variables });
  for await (const event of iterator) {
    events.push(event);
    if (stop(events)) {
      await iterator.return?.();
      break;
    }
  }
  return events;
}

async function ffprobe(url: string) {
  const { stdout } = await run('ffprobe', [
    '-v',
    'error',
    '-print_format',
    'json',
    '-show_format',
    '-show_streams',
    url,
  ]);
  return JSON.parse(stdout) as {
    format: { format_name: string; duration: string };
    streams: { codec_name: string; bit_rate?: string; sample_rate?: string; channels?: number }[];
  };
}

async function outputsOf(jobId: string): Promise<number> {
  const conn = await mysql.createConnection(`${MYSQL_SERVER}/${system.databases.media}`);
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM media WHERE job_id = ?', [jobId]);
    return Number(rows[0]!.n);
  } finally {
    await conn.end();
  }
}

const workerOf = (jobId: string) => claimedBy(system, jobId);

/**
 * Overwrites a stored blob with other bytes, zero-padded to the recorded size (so ranged reads stay valid):
 * the bytes at rest go bad after the upload's checks, and only the converter can find out.
 */
async function replaceStoredBytes(media: UploadedMedia, replacement: string): Promise<void> {
  const path = join(system.blobDir, media.id.slice(0, 2), media.id);
  await copyFile(replacement, path);
  await truncate(path, media.byteSize);
}

/** Workers this file started after the system's own (the system's `services` lists only those it started). */
const laterWorkers: ServiceProcess[] = [];

/** The converter workers running now: the system's and this file's, minus those killed or stopped. */
function runningWorkers(): ServiceProcess[] {
  const all = [...Object.values(system.services).filter((s) => s.name.startsWith('worker')), ...laterWorkers];
  const byPid = new Map(all.map((s) => [s.child.pid, s]));
  return [...byPid.values()].filter((s) => s.child.exitCode === null && s.child.signalCode === null);
}

/** The running worker that holds a job's claim (WORKER_ID `e2e-worker-N` is service `workerN`). */
async function workerHolding(jobId: string): Promise<ServiceProcess | undefined> {
  const workerId = await workerOf(jobId);
  return runningWorkers().find((s) => workerId === `e2e-${s.name.replace('worker', 'worker-')}`);
}

/** ffmpeg processes the workers run now: what cancel and crashes must not leave behind. */
const ffmpegRunning = () => ffmpegOf(...runningWorkers());

/** A service's /readyz status (0 when it does not answer at all). */
async function readiness(service: ServiceProcess): Promise<number> {
  try {
    const res = await fetch(`${service.url}/readyz`);
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/**
 * Resolves once the service's /readyz has answered 503 and then 200 again: it noticed the loss of its
 * connection and recovered by itself. Polled every 20 ms; a lost connection is retried after 1 s, so the
 * 503 lasts far longer than that.
 */
async function notReadyThenReady(service: ServiceProcess, deadline: number): Promise<void> {
  let sawNotReady = false;
  for (;;) {
    const status = await readiness(service);
    if (status === 503) sawNotReady = true;
    else if (status === 200 && sawNotReady) return;
    if (Date.now() > deadline) {
      throw new Error(`${service.name} ${sawNotReady ? 'did not become ready again' : 'never reported not ready'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface BrokerConnection {
  /** RabbitMQ's name for it ("client address:port -> server address:port") and its Erlang process. */
  name: string;
  pid: string;
  /** The OS process at the client's end of it. */
  holder: number | undefined;
}

/** The system's RabbitMQ connections as RabbitMQ lists them, each with the local process holding it. */
async function brokerConnections(): Promise<BrokerConnection[]> {
  // list_connections lists the whole node's (other test systems' too) and takes no vhost: filtered here.
  const { stdout } = await run('rabbitmqctl', [
    '-q',
    'list_connections',
    '--no-table-headers',
    'vhost',
    'name',
    'pid',
    'peer_port',
  ]);
  const rows = stdout
    .split('\n')
    .map((line) => line.split('\t'))
    .filter(([vhost]) => vhost === system.vhost);
  const holders = await socketHolders(Object.values(system.services).concat(laterWorkers));
  return rows.map(([, name, pid, port]) => ({ name: name!, pid: pid!, holder: holders.get(Number(port)) }));
}

/**
 * For each local port of a TCP connection to RabbitMQ's port, the process (among `services`) holding its
 * socket: the kernel's socket table gives the inode per port, each process's file descriptors the inodes.
 */
async function socketHolders(services: ServiceProcess[]): Promise<Map<number, number>> {
  const brokerPort = (Number(new URL(system.rabbitmqUrl).port) || 5672).toString(16).toUpperCase().padStart(4, '0');
  const portOf = new Map<string, number>(); // socket inode → local port
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      // "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …"
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10 || !fields[2]!.endsWith(`:${brokerPort}`)) continue;
      portOf.set(fields[9]!, parseInt(fields[1]!.split(':').at(-1)!, 16));
    }
  }
  const holders = new Map<number, number>();
  for (const pid of new Set(services.map((s) => s.child.pid!))) {
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
      const inode = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))?.[1];
      const port = inode === undefined ? undefined : portOf.get(inode);
      if (port !== undefined) holders.set(port, pid);
    }
  }
  return holders;
}

describe('converting a video, watched live through the gateway', () => {
  it('goes QUEUED/RUNNING → rising progress → SUCCEEDED, with fields of all three subgraphs, and the mp3 is right', async () => {
    const media = await upload(longVideo);
    const created = await convert(media.id, { bitrateKbps: 128 });
    expect(created).toMatchObject({ status: 'QUEUED', progress: 0, attempts: 1, owner: { email: alice.email } });

    expect((await job(created.id)).data?.job.id).toBe(created.id); // counted: the series exists
    const jobQueriesBefore = await jobQueries();
    const client = subscriber(alice);
    const events = await collect<{ jobUpdated: JobView }>(
      client,
      `subscription ($id: ID!) { jobUpdated(id: $id) { status progress owner { email } input { filename }
        output { downloadUrl durationSeconds } } }`,
      { id: created.id },
    );
    await client.dispose();

    expect(events.every((e) => !e.errors)).toBe(true);
    // Each event carried the job's own fields: the gateway fetched only users' and media's, never jobs' again.
    expect(events.length).toBeGreaterThanOrEqual(4);
    expect(await jobQueries()).toBe(jobQueriesBefore);
    const updates = events.map((e) => e.data!.jobUpdated);
    const order = ['QUEUED', 'RUNNING', 'SUCCEEDED'];
    const ranks = updates.map((u) => order.indexOf(u.status));
    expect(ranks.every((r) => r >= 0)).toBe(true);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b)); // never backwards
    const progress = updates.map((u) => u.progress);
    expect(progress).toEqual([...progress].sort((a, b) => a - b)); // never backwards
    expect(new Set(progress.filter((p) => p > 0 && p < 1)).size).toBeGreaterThanOrEqual(2);

    const last = updates.at(-1)!;
    expect(last.status).toBe('SUCCEEDED');
    expect(last.progress).toBe(1);
    expect(last.owner.email).toBe(alice.email);
    expect(last.input.filename).toBe('long-moov-at-end.mp4');
    expect(last.output!.durationSeconds).toBeCloseTo(LONG_SECONDS, 0);

    const probe = await ffprobe(last.output!.downloadUrl);
    expect(probe.format.format_name).toBe('mp3');
    expect(probe.streams[0]!.codec_name).toBe('mp3');
    expect(Number(probe.streams[0]!.bit_rate)).toBeCloseTo(128_000, -4);
    expect(Math.abs(Number(probe.format.duration) - LONG_SECONDS)).toBeLessThanOrEqual(0.5);
  });

  it('trims, resamples and downmixes as asked', async () => {
    const media = await upload(await sample('moov-at-end.mp4'));
    const created = await convert(media.id, {
      bitrateKbps: 96,
      sampleRateHz: 22050,
      channels: 1,
      startSeconds: 0.5,
      endSeconds: 2.5,
    });
    await waitFor(created.id, (j) => j.status === 'SUCCEEDED');
    const done = (await job(created.id)).data!.job;
    const probe = await ffprobe(done.output!.downloadUrl);
    expect(Math.abs(Number(probe.format.duration) - 2)).toBeLessThanOrEqual(0.5);
    expect(probe.streams[0]).toMatchObject({ codec_name: 'mp3', sample_rate: '22050', channels: 1 });
  });

  it('lists conversions on the user and on the video', async () => {
    const media = await upload(await sample('faststart.mp4'));
    const created = await convert(media.id);
    const res = await graphql<{
      me: { jobs: { edges: { node: { id: string } }[] } };
      media: { conversions: { edges: { node: { id: string } }[] } };
    }>(
      system.gatewayUrl,
      'query ($m: ID!) { me { jobs(first: 50) { edges { node { id } } } } media(id: $m) { conversions { edges { node { id } } } } }',
      {
        token: alice.token,
        variables: { m: media.id },
      },
    );
    expect(res.data!.me.jobs.edges.map((e) => e.node.id)).toContain(created.id);
    expect(res.data!.media.conversions.edges.map((e) => e.node.id)).toEqual([created.id]);
  });

  it('keeps a job readable after its input video is deleted', async () => {
    const media = await upload(await sample('faststart.mp4'));
    const created = await convert(media.id);
    await waitFor(created.id, (j) => j.status === 'SUCCEEDED');
    const del = await graphql(system.gatewayUrl, 'mutation ($id: ID!) { deleteMedia(id: $id) }', {
      token: alice.token,
      variables: { id: media.id },
    });
    expect(del.data).toEqual({ deleteMedia: true });
    const after = await job(created.id);
    expect(after.errors).toBeUndefined();
    expect(after.data!.job).toMatchObject({ status: 'SUCCEEDED', input: { filename: 'faststart.mp4' } });
    expect(after.data!.job.output).not.toBeNull();
  });
});

describe('refusing what cannot be converted', () => {
  it('refuses invalid options with BAD_USER_INPUT', async () => {
    const media = await upload(await sample('faststart.mp4'));
    for (const options of [
      { bitrateKbps: 100 },
      { sampleRateHz: 12345 },
      { channels: 6 },
      { startSeconds: 2, endSeconds: 1 },
      { endSeconds: 60 },
    ]) {
      const res = await graphql(
        system.gatewayUrl,
        'mutation ($id: ID!, $o: ConversionOptions) { convertMedia(mediaId: $id, options: $o) { id } }',
        {
          token: alice.token,
          variables: { id: media.id, o: options },
        },
      );
      expect(errorCode(res), JSON.stringify(options)).toBe('BAD_USER_INPUT');
    }
  });

  it('fails a video whose stored bytes have no audio track at once, with a clear error and no retries', async () => {
    const media = await upload(await sample('faststart.mp4'));
    // The bytes at rest are replaced after the upload checks: the converter must find out for itself.
    await replaceStoredBytes(media, await sample('no-audio.mp4'));
    const created = await convert(media.id);
    await waitFor(created.id, (j) => j.status === 'FAILED');
    const failed = (await job(created.id)).data!.job;
    expect(failed.error!.code).toBe('UNSUPPORTED_MEDIA');
    expect(failed.error!.message).toMatch(/audio/i);
    expect(failed.error!.message).not.toMatch(/http|\/tmp|ffmpeg version/);
    expect(failed.attempts).toBe(1);
  });

  it('fails a corrupt video the same way', async () => {
    const media = await upload(await sample('faststart.mp4'));
    await replaceStoredBytes(media, await sample('unknown.bin'));
    const created = await convert(media.id);
    await waitFor(created.id, (j) => j.status === 'FAILED');
    const failed = (await job(created.id)).data!.job;
    expect(failed.error!.code).toBe('UNSUPPORTED_MEDIA');
    expect(failed.attempts).toBe(1);
  });
});

describe('cancelling, retrying and surviving failures', () => {
  it('cancels a running conversion: CANCELLED, and its ffmpeg is gone within 2 seconds', async () => {
    const media = await upload(longVideo);
    const created = await convert(media.id);
    await waitFor(created.id, (j) => j.status === 'RUNNING' && j.progress > 0);
    expect(await ffmpegRunning()).toBe(1); // its ffmpeg, found before the cancel
    const res = await graphql<{ cancelJob: JobView }>(
      system.gatewayUrl,
      'mutation ($id: ID!) { cancelJob(id: $id) { status } }',
      {
        token: alice.token,
        variables: { id: created.id },
      },
    );
    expect(res.data?.cancelJob.status).toBe('CANCELLED');
    await expect.poll(() => ffmpegRunning(), { timeout: 2_000, interval: 100 }).toBe(0);
    // …and a cancelled job stays cancelled, with no output.
    await new Promise((r) => setTimeout(r, 500));
    expect((await job(created.id)).data!.job).toMatchObject({ status: 'CANCELLED', output: null });

    const again = await graphql(system.gatewayUrl, 'mutation ($id: ID!) { cancelJob(id: $id) { status } }', {
      token: alice.token,
      variables: { id: created.id },
    });
    expect(errorCode(again)).toBe('CONFLICT');

    // Retrying a cancelled job converts it after all.
    const retried = await graphql<{ retryJob: JobView }>(
      system.gatewayUrl,
      'mutation ($id: ID!) { retryJob(id: $id) { status attempts } }',
      {
        token: alice.token,
        variables: { id: created.id },
      },
    );
    expect(retried.data?.retryJob).toEqual({ status: 'QUEUED', attempts: 2 });
    await waitFor(created.id, (j) => j.status === 'SUCCEEDED');
    expect(await outputsOf(created.id)).toBe(1);
  });

  it('finishes a job whose worker is killed mid-conversion, with exactly one output', async () => {
    const media = await upload(longVideo);
    const created = await convert(media.id);
    await waitFor(created.id, (j) => j.status === 'RUNNING' && j.progress > 0.1);
    const victim = await workerHolding(created.id);
    expect(victim, `worker ${await workerOf(created.id)}`).toBeDefined();
    victim!.child.kill('SIGKILL');
    await waitFor(created.id, (j) => j.status === 'SUCCEEDED', 90_000);
    expect(await outputsOf(created.id)).toBe(1);
    laterWorkers.push(await system.startWorker()); // back to two for the tests after this one
  });

  it('hands a running job back when its worker is stopped (SIGTERM), and another worker finishes it', async () => {
    const media = await upload(longVideo);
    const created = await convert(media.id);
    await waitFor(created.id, (j) => j.status === 'RUNNING' && j.progress > 0.1);
    const workerId = await workerOf(created.id);
    const stopped = await workerHolding(created.id);
    expect(stopped, `worker ${workerId}`).toBeDefined();
    const exited = new Promise<number | null>((resolve) => stopped!.child.once('exit', (code) => resolve(code)));
    stopped!.child.kill('SIGTERM');
    expect(await exited).toBe(0); // a clean shutdown, not a crash
    await waitFor(created.id, (j) => j.status === 'SUCCEEDED', 60_000);
    expect(await workerOf(created.id)).not.toBe(workerId);
    expect(await outputsOf(created.id)).toBe(1);
    laterWorkers.push(await system.startWorker());
  });

  it('keeps a subscription going through the gateway while the jobs service restarts', async () => {
    const media = await upload(longVideo);
    const created = await convert(media.id);
    const client = subscriber(alice);
    let restarted = false;
    const events = await collect<{ jobUpdated: { status: string; progress: number } }>(
      client,
      'subscription ($id: ID!) { jobUpdated(id: $id) { status progress } }',
      { id: created.id },
      (es) => {
        const last = es.at(-1)?.data?.jobUpdated;
        if (!restarted && last?.status === 'RUNNING') {
          restarted = true;
          void system.restart('jobs');
        }
        return false;
      },
    );
    await client.dispose();
    expect(restarted).toBe(true);
    expect(events.every((e) => !e.errors)).toBe(true);
    expect(events.at(-1)?.data?.jobUpdated.status).toBe('SUCCEEDED');
  });

  it(
    'keeps working when RabbitMQ drops every connection: each service notices, reconnects by itself, and conversions go through',
    { timeout: 120_000 },
    async () => {
      // The services that need RabbitMQ to work: jobs and the two workers. Each connected and ready before the
      // drop. Users and media only announce through their outboxes (RabbitMQ away delays that, nothing else):
      // they hold a connection each too, and stay ready.
      const services = [system.services.jobs!, ...runningWorkers()];
      expect(services.map((s) => s.name)).toEqual([
        'jobs',
        expect.stringMatching(/^worker/),
        expect.stringMatching(/^worker/),
      ]);
      const announcers = [system.services.users!, system.services.media!];
      for (const service of services) await expect.poll(() => readiness(service), { timeout: 30_000 }).toBe(200);
      const pids = [...services, ...announcers].map((s) => s.child.pid).sort();
      const holders = (connections: BrokerConnection[]) => connections.map((c) => c.holder).sort();
      // One connection each, and none held by anybody else.
      const before = await vi.waitFor(
        async () => {
          const connections = await brokerConnections();
          expect(holders(connections)).toEqual(pids);
          return connections;
        },
        { timeout: 30_000, interval: 250 },
      );
      const lost = (s: ServiceProcess) => s.logs.filter((l) => l.includes('RabbitMQ connection lost')).length;
      const lostBefore = services.map(lost);

      const deadline = Date.now() + 60_000;
      const recovered = Promise.all(services.map((s) => notReadyThenReady(s, deadline)));
      await run('rabbitmqctl', [
        '-q',
        'close_all_connections',
        '--vhost',
        system.vhost,
        'e2e: simulated broker failure',
      ]);
      // Each reported not ready while disconnected, and ready again once it had reconnected on its own…
      await recovered;
      services.forEach((s, i) => expect(lost(s), s.name).toBeGreaterThan(lostBefore[i]!));
      for (const service of announcers) expect(await readiness(service), service.name).toBe(200);

      // …over new connections: the same processes (reconnected, not restarted) hold one each, none of the old ones.
      const after = await vi.waitFor(
        async () => {
          const connections = await brokerConnections();
          expect(holders(connections)).toEqual(pids);
          return connections;
        },
        { timeout: 30_000, interval: 250 },
      );
      const old = new Set(before.flatMap((c) => [c.name, c.pid]));
      expect(after.filter((c) => old.has(c.name) || old.has(c.pid))).toEqual([]);

      const media = await upload(await sample('sample.mkv'));
      const created = await convert(media.id);
      await waitFor(created.id, (j) => j.status === 'SUCCEEDED', 60_000);
    },
  );
});

describe('only the owner reaches a job', () => {
  it('answers NOT_FOUND to anyone else reading, cancelling, retrying or subscribing', async () => {
    const media = await upload(await sample('faststart.mp4'));
    const created = await convert(media.id);
    const asBob = (query: string) =>
      graphql(system.gatewayUrl, query, { token: bob.token, variables: { id: created.id } });
    expect(errorCode(await asBob('query ($id: ID!) { job(id: $id) { id } }'))).toBe('NOT_FOUND');
    expect(errorCode(await asBob('mutation ($id: ID!) { cancelJob(id: $id) { id } }'))).toBe('NOT_FOUND');
    expect(errorCode(await asBob('mutation ($id: ID!) { retryJob(id: $id) { id } }'))).toBe('NOT_FOUND');

    const client = subscriber(bob);
    const events = await collect(client, 'subscription ($id: ID!) { jobUpdated(id: $id) { status } }', {
      id: created.id,
    });
    await client.dispose();
    expect(events[0]?.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');

    const convertForeign = await graphql(
      system.gatewayUrl,
      'mutation ($id: ID!) { convertMedia(mediaId: $id) { id } }',
      {
        token: bob.token,
        variables: { id: media.id },
      },
    );
    expect(errorCode(convertForeign)).toBe('NOT_FOUND');
  });

  it("checks each subscription's own token on a socket shared by several users (as the gateway's is)", async () => {
    const media = await upload(await sample('faststart.mp4'));
    const created = await convert(media.id);
    // One socket to jobs itself, signed in as no one: every subscription names its caller in `extensions`.
    const shared = createClient({
      url: `${system.services.jobs!.url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
    });
    const subscribeAs = async (authorization?: string) => {
      const iterator = shared.iterate<{ jobUpdated: { status: string } }>({
        query: 'subscription ($id: ID!) { jobUpdated(id: $id) { status } }',
        variables: { id: created.id },
        ...(authorization ? { extensions: { authorization } } : {}),
      });
      try {
        const first = await iterator.next();
        return first.value as {
          data?: { jobUpdated: { status: string } };
          errors?: { extensions?: { code?: string } }[];
        };
      } catch (errors) {
        return { errors: errors as { extensions?: { code?: string } }[] };
      } finally {
        await iterator.return?.();
      }
    };
    const [owner, other, forged, anonymous] = await Promise.all([
      subscribeAs(`Bearer ${alice.token}`),
      subscribeAs(`Bearer ${bob.token}`),
      subscribeAs(`Bearer ${alice.token.slice(0, -4)}AAAA`),
      subscribeAs(undefined),
    ]);
    await shared.dispose();
    expect(owner.data?.jobUpdated.status).toMatch(/QUEUED|RUNNING|SUCCEEDED/);
    expect(other.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(forged.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('tells each user about their own jobs only (myJobUpdates)', async () => {
    type Update = { data?: { myJobUpdates: { id: string; status: string } } | null };
    const listen = (user: SignedUp) => {
      const client = subscriber(user);
      const events: Update[] = [];
      const iterator = client.iterate<{ myJobUpdates: { id: string; status: string } }>({
        query: 'subscription { myJobUpdates { id status } }',
      });
      void (async () => {
        for await (const e of iterator) events.push(e);
      })();
      return { client, events, iterator, ids: () => new Set(events.map((e) => e.data?.myJobUpdates.id)) };
    };
    const aliceFeed = listen(alice);
    const bobFeed = listen(bob);
    // Each subscription is shown live by a job of the user's own before the other user's job exists.
    const bobsJob = await convert((await upload(await sample('faststart.mp4'), bob)).id, {}, bob);
    await expect.poll(() => bobFeed.ids().has(bobsJob.id), { timeout: 30_000 }).toBe(true);
    const alicesFirst = await convert((await upload(await sample('faststart.mp4'))).id);
    await expect.poll(() => aliceFeed.ids().has(alicesFirst.id), { timeout: 30_000 }).toBe(true);

    const alicesJob = await convert((await upload(await sample('faststart.mp4'))).id);
    const succeeded = (feed: typeof aliceFeed, id: string) =>
      feed.events.some((e) => e.data?.myJobUpdates.id === id && e.data.myJobUpdates.status === 'SUCCEEDED');
    await expect.poll(() => succeeded(aliceFeed, alicesJob.id), { timeout: 60_000 }).toBe(true);
    await expect.poll(() => succeeded(bobFeed, bobsJob.id), { timeout: 60_000 }).toBe(true);

    // Alice's feed may also carry her jobs of earlier tests (still settling); never Bob's, and Bob's none of hers.
    expect([...aliceFeed.ids()]).toEqual(expect.arrayContaining([alicesFirst.id, alicesJob.id]));
    expect(aliceFeed.ids().has(bobsJob.id)).toBe(false);
    expect([...bobFeed.ids()]).toEqual([bobsJob.id]);
    await Promise.all([aliceFeed.iterator.return?.(), bobFeed.iterator.return?.()]);
    await Promise.all([aliceFeed.client.dispose(), bobFeed.client.dispose()]);
  });
});
