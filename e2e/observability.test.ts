// What an operator relies on: one request id followed from the gateway to the worker, Prometheus figures on
// every service, and readiness that names the dependency that is down.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { errorCode, graphql, signUpUser, uploadFile, type SignedUp, type UploadedMedia } from './client.js';
import { sample } from './fixtures.js';
import { freePort, startSystem, stopService, type System } from './harness.js';

let system: System;
let alice: SignedUp;
let gatewayMetricsUrl: string;

beforeAll(async () => {
  // The gateway serves its metrics on a listener of its own, as on Kubernetes (never on the public port).
  const metricsPort = await freePort();
  gatewayMetricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  system = await startSystem({ gateway: { METRICS_PORT: String(metricsPort) } }, { workers: 1 });
  alice = await signUpUser(system.gatewayUrl);
}, 120_000);
afterAll(async () => {
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

type LogLine = Record<string, unknown>;

/** A service's JSON log lines (anything else it printed is skipped). */
function logLines(service: string): LogLine[] {
  return (system.services[service]?.logs ?? []).flatMap((line) => {
    try {
      return [JSON.parse(line) as LogLine];
    } catch {
      return [];
    }
  });
}

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Scrapes a /metrics URL and parses the text exposition format. */
async function scrape(url: string): Promise<Series[]> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return (await res.text()).split('\n').flatMap((line) => {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) return [];
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    return [{ name: match[1]!, labels, value: Number(match[3]) }];
  });
}

/** The value of the one series of `name` with these labels (and maybe others). */
function value(series: Series[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} series`);
  return found[0]?.value;
}

const metricsUrl = (service: string) => `${system.services[service]!.url}/metrics`;

async function upload(path: string): Promise<UploadedMedia> {
  const res = await uploadFile(system.gatewayUrl, path, { token: alice.token });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.uploadVideo;
}

describe('a request id, end to end', () => {
  const requestId = `obs-${randomUUID()}`;
  let jobId: string;

  it('converts a video asked for with a chosen x-request-id, and echoes the id', async () => {
    const video = await upload(await sample('faststart.mp4'));
    const res = await graphql<{ convertMedia: { id: string } }>(
      system.gatewayUrl,
      'mutation Convert($id: ID!) { convertMedia(mediaId: $id) { id } }',
      { token: alice.token, variables: { id: video.id }, headers: { 'x-request-id': requestId } },
    );
    expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
    expect(res.headers.get('x-request-id')).toBe(requestId);
    jobId = res.data!.convertMedia.id;
    await expect
      .poll(
        async () =>
          (
            await graphql<{ job: { status: string } }>(
              system.gatewayUrl,
              'query Job($id: ID!) { job(id: $id) { status } }',
              {
                token: alice.token,
                variables: { id: jobId },
              },
            )
          ).data?.job.status,
        { timeout: 60_000, interval: 200 },
      )
      .toBe('SUCCEEDED');
  }, 90_000);

  it('is in the logs of the gateway, jobs, media and the worker that converted the job', async () => {
    const withId = (service: string) => logLines(service).filter((line) => line.requestId === requestId);

    expect(withId('gateway')).toContainEqual(expect.objectContaining({ msg: 'request', path: '/graphql' }));
    // jobs: the mutation it served, the worker's claim, and the worker's events that came back over RabbitMQ.
    // The job events' publishing and handling happen after the job is SUCCEEDED: wait for the last line.
    await expect
      .poll(() => withId('jobs'), { timeout: 10_000 })
      .toContainEqual(expect.objectContaining({ msg: 'job event handled', jobId, event: 'succeeded' }));
    expect(withId('jobs')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ msg: 'request', path: '/graphql' }),
        expect.objectContaining({ msg: 'request', path: `/internal/jobs/${jobId}/claim` }),
        expect.objectContaining({ msg: 'job event handled', jobId, event: 'succeeded' }),
      ]),
    );
    // media: jobs' lookup of the video, ffmpeg's reads of it, and the worker's upload of the mp3.
    const mediaPaths = withId('media').map((line) => line.path);
    expect(mediaPaths).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\/internal\/media\/[^/]+$/),
        expect.stringMatching(/^\/internal\/media\/[^/]+\/content$/),
        `/internal/jobs/${jobId}/output`,
      ]),
    );
    // The worker: every line about the job carries the id.
    const workerLines = logLines('worker1').filter((line) => line.jobId === jobId);
    expect(workerLines.map((line) => line.msg)).toEqual(
      expect.arrayContaining(['conversion started', 'conversion succeeded']),
    );
    expect(workerLines.every((line) => line.requestId === requestId)).toBe(true);
  });

  it('shows on every service’s /metrics as Prometheus figures', async () => {
    const rejected = await uploadFile(system.gatewayUrl, await sample('text.mp4'), { token: alice.token });
    expect(errorCode(rejected)).toBe('UNSUPPORTED_MEDIA');
    const missing = await graphql(system.gatewayUrl, 'query Missing { job(id: "no-such-job") { id } }', {
      token: alice.token,
    });
    expect(errorCode(missing)).toBe('NOT_FOUND');

    const gateway = await scrape(gatewayMetricsUrl);
    expect(value(gateway, 'vidmp3_graphql_operations_total', { type: 'mutation', field: 'convertMedia' })).toBe(1);
    expect(value(gateway, 'vidmp3_graphql_operation_duration_seconds_count', { type: 'query', field: 'job' })).toBe(
      value(gateway, 'vidmp3_graphql_operations_total', { type: 'query', field: 'job' }),
    );
    expect(value(gateway, 'vidmp3_graphql_errors_total', { field: 'job', code: 'NOT_FOUND' })).toBe(1);
    const graphqlPosts = value(gateway, 'vidmp3_http_request_duration_seconds_count', {
      service: 'gateway',
      method: 'POST',
      route: '/graphql',
      status: '200',
    });
    expect(graphqlPosts).toBeGreaterThanOrEqual(4);
    // Route templates, never raw URLs.
    expect(gateway.some((s) => s.labels.route?.includes(jobId))).toBe(false);
    expect(value(gateway, 'process_cpu_user_seconds_total', { service: 'gateway' })).toBeGreaterThan(0);

    const media = await scrape(metricsUrl('media'));
    expect(value(media, 'vidmp3_uploads_total', { service: 'media', outcome: 'accepted' })).toBeGreaterThanOrEqual(1);
    expect(value(media, 'vidmp3_uploads_total', { outcome: 'rejected', code: 'UNSUPPORTED_MEDIA' })).toBe(1);
    expect(value(media, 'vidmp3_upload_bytes_sum')).toBeGreaterThan(1000);
    expect(
      value(media, 'vidmp3_http_request_duration_seconds_count', {
        method: 'PUT',
        route: '/internal/jobs/:jobId/output',
        status: '201',
      }),
    ).toBe(1);

    const jobs = await scrape(metricsUrl('jobs'));
    expect(value(jobs, 'vidmp3_jobs', { service: 'jobs', status: 'SUCCEEDED' })).toBe(1);
    expect(value(jobs, 'vidmp3_jobs', { status: 'QUEUED' })).toBe(0);
    expect(value(jobs, 'vidmp3_jobs', { status: 'RUNNING' })).toBe(0);
    expect(value(jobs, 'vidmp3_outbox_pending_messages')).toBe(0);
    expect(value(jobs, 'vidmp3_job_events_total', { type: 'succeeded' })).toBe(1);
    expect(
      value(jobs, 'vidmp3_rabbitmq_publishes_total', { exchange: 'vidmp3.conversions', outcome: 'confirmed' }),
    ).toBe(1);
    expect(value(jobs, 'vidmp3_rabbitmq_connected')).toBe(1);
    // The services that do see URLs with the job's id (the claim, the output upload) label them by template:
    // the requests were counted, and no label anywhere holds the id.
    expect(
      value(jobs, 'vidmp3_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/internal/jobs/:id/claim',
        status: '200',
      }),
    ).toBeGreaterThanOrEqual(1);
    for (const series of [gateway, media, jobs]) {
      expect(series.filter((s) => Object.values(s.labels).some((v) => v.includes(jobId)))).toEqual([]);
    }

    const worker = await scrape(metricsUrl('worker1'));
    expect(value(worker, 'vidmp3_conversions_total', { service: 'converter', outcome: 'succeeded' })).toBe(1);
    expect(value(worker, 'vidmp3_conversion_duration_seconds_count', { outcome: 'succeeded' })).toBe(1);
    expect(value(worker, 'vidmp3_conversion_duration_seconds_sum', { outcome: 'succeeded' })).toBeGreaterThan(0);
    expect(value(worker, 'vidmp3_queue_messages', { queue: 'vidmp3.conversions' })).toBe(0);
    expect(value(worker, 'vidmp3_queue_consumers', { queue: 'vidmp3.conversions' })).toBe(1);
    expect(value(worker, 'vidmp3_conversions_in_progress')).toBe(0);
    expect(
      value(worker, 'vidmp3_rabbitmq_publishes_total', { exchange: 'vidmp3.job-events', outcome: 'confirmed' }),
    ).toBeGreaterThanOrEqual(2);

    const users = await scrape(metricsUrl('users'));
    expect(
      value(users, 'vidmp3_http_request_duration_seconds_count', { method: 'POST', route: '/graphql', status: '200' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('keeps the gateway’s metrics off its public port', async () => {
    expect((await fetch(`${system.gatewayUrl}/metrics`)).status).toBe(404);
  });
});

describe('readiness', () => {
  it('says every service is ready, naming what it checked', async () => {
    const expected: Record<string, string[]> = {
      gateway: ['jwks'],
      users: ['mysql'],
      media: ['mysql', 'blobs'],
      jobs: ['mysql', 'rabbitmq'],
      worker1: ['rabbitmq', 'media'],
    };
    for (const [service, checks] of Object.entries(expected)) {
      const res = await fetch(`${system.services[service]!.url}/readyz`);
      expect(res.status, service).toBe(200);
      expect(await res.json()).toEqual({
        status: 'ready',
        checks: Object.fromEntries(checks.map((name) => [name, 'ok'])),
      });
    }
  });

  it('answers 503 naming the dependency a worker cannot reach, and no address', async () => {
    const closedPort = await freePort();
    const worker = await system.startWorker({ MEDIA_INTERNAL_URL: `http://127.0.0.1:${closedPort}` });
    try {
      const res = await fetch(`${worker.url}/readyz`);
      expect(res.status).toBe(503);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ status: 'unavailable', checks: { rabbitmq: 'ok', media: 'unavailable' } });
      expect(text).not.toContain(String(closedPort));
      // Still alive: an orchestrator stops sending it work, it does not restart it.
      expect((await fetch(`${worker.url}/healthz`)).status).toBe(200);
    } finally {
      await stopService(worker);
    }
  });
});
