// The container smoke test: every image built from the Dockerfile (scripts/containers/podman.ts), started with
// podman as docker-compose.yml and the Kubernetes manifests start it (scripts/containers/services.ts, run.ts), on
// the host network against the machine's MariaDB and RabbitMQ (databases, accounts and a virtual host of this
// run's own), and driven through the gateway container as a user would: sign up, upload, convert, watch, download,
// and read the notifier's "your mp3 is ready" mail on an SMTP server of this process.
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createClient } from 'graphql-ws';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import mysql from 'mysql2/promise';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import WebSocket from 'ws';
import { graphql, signUpUser, uploadFile, type SignedUp } from '../../e2e/client.js';
import { MYSQL_SERVER, RABBITMQ_SERVER } from '../../e2e/env.js';
import { generateVideo } from '../../e2e/fixtures.js';
import { freePort } from '../../e2e/harness.js';
import { DEPLOYABLES, type Deployable } from '../lib/service-env.js';
import { devDependencies, listImage, notRunning, readImageFile, secrets } from './image-contents.js';
import { builtImages, ensureImages, formatSizes, imageSizes, podman, ROOT } from './podman.js';
import { logsOf, runArguments, state, waitReady, type Container } from './run.js';
import { RUN_AS, SERVICES, serviceSpec, type ServiceSpec } from './services.js';

const exec = promisify(execFile);

const run = randomBytes(4).toString('hex');
const LABEL = 'vidmp3-smoke';
const prefix = `vidmp3-smoke-${run}`;
const databases = {
  users: `vidmp3_smoke_users_${run}`,
  media: `vidmp3_smoke_media_${run}`,
  jobs: `vidmp3_smoke_jobs_${run}`,
  notifier: `vidmp3_smoke_notifier_${run}`,
};
const vhost = `vidmp3_smoke_${run}`;
const rabbitUser = `vidmp3_smoke_${run}`;
const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const MAIL_FROM = 'vidmp3 <no-reply@vidmp3.test>';

// The converters' shutdown grace, short here so that a stopped converter hands its running job back (compose and
// the manifests give it 1500 s: the longest conversion). podman stop waits that plus compose's margin (30 s).
const CONVERTER_GRACE_SECONDS = 2;
const COMPOSE_STOP_MARGIN_SECONDS = 1530 - 1500;
// Converters read their input at 4× real time: the 60 s video takes about 15 s, long enough to stop one mid-way.
const READRATE = '4';
const LONG_SECONDS = 60;

const containers = new Map<string, Container>();
let dir: string;
let user: SignedUp;
let gateway: Container;
let smtp: MailServer;
/** The image ids this tree built, by target. */
let images: Map<Deployable, string>;

// ---- the run's own accounts and places ----------------------------------------------------------------------------

const mysqlAccounts = Object.fromEntries(
  (Object.keys(databases) as (keyof typeof databases)[]).map((s) => [
    s,
    { user: `smoke_${s}_${run}`, password: hex(16) },
  ]),
) as Record<keyof typeof databases, { user: string; password: string }>;
const rabbitPassword = hex(16);
const mysqlHost = new URL(MYSQL_SERVER).host;
const rabbitHost = new URL(RABBITMQ_SERVER).host;

/** One database and one account per service, each allowed only its own database (compose's mysql-init). */
async function createDatabases(): Promise<void> {
  const conn = await mysql.createConnection(MYSQL_SERVER);
  try {
    for (const [service, db] of Object.entries(databases) as [keyof typeof databases, string][]) {
      const { user: name, password } = mysqlAccounts[service];
      await conn.query(`CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
      for (const host of ['%', 'localhost']) {
        await conn.query(`CREATE USER ?@? IDENTIFIED BY ?`, [name, host, password]);
        await conn.query(`GRANT ALL PRIVILEGES ON \`${db}\`.* TO ?@?`, [name, host]);
      }
    }
  } finally {
    await conn.end();
  }
}

async function dropDatabases(): Promise<void> {
  const conn = await mysql.createConnection(MYSQL_SERVER);
  try {
    for (const [service, db] of Object.entries(databases) as [keyof typeof databases, string][]) {
      await conn.query(`DROP DATABASE IF EXISTS \`${db}\``);
      for (const host of ['%', 'localhost'])
        await conn.query('DROP USER IF EXISTS ?@?', [mysqlAccounts[service].user, host]);
    }
  } finally {
    await conn.end();
  }
}

const rabbitmqctl = (...args: string[]) => exec('rabbitmqctl', ['-q', ...args]);

const mysqlUrl = (service: keyof typeof databases) =>
  `mysql://${mysqlAccounts[service].user}:${mysqlAccounts[service].password}@${mysqlHost}/${databases[service]}`;
const rabbitmqUrl = () => `amqp://${rabbitUser}:${rabbitPassword}@${rabbitHost}/${vhost}`;

// ---- mail ------------------------------------------------------------------------------------------------------------

/** An SMTP server on loopback (the notifier's container shares the host network) keeping what it receives, parsed. */
class MailServer {
  readonly received: ParsedMail[] = [];
  private readonly server = new SMTPServer({
    // Plain SMTP, as a relay on the same host would take it; no TLS, no login.
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    onData: (stream, _session, callback) => {
      simpleParser(stream).then(
        (mail) => {
          this.received.push(mail);
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });

  constructor(readonly port: number) {}

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  to(address: string): ParsedMail[] {
    const of = (field: AddressObject | AddressObject[] | undefined) =>
      (Array.isArray(field) ? field : field ? [field] : []).flatMap((a) => a.value.map((v) => v.address));
    return this.received.filter((mail) => of(mail.to).includes(address));
  }
}

// ---- the containers -----------------------------------------------------------------------------------------------

const volumeName = (container: string, path: string) => `${container}${path.replaceAll('/', '-')}`;

async function start(spec: ServiceSpec, name: string, port: number, env: Record<string, string>): Promise<Container> {
  const { args, env: secretEnv } = runArguments(
    spec,
    name,
    env,
    { [LABEL]: run },
    (path) => volumeName(name, path),
    images.get(spec.name)!,
  );
  // A volume the image has no directory for (media's /blobs) belongs to the service's user, as an fsGroup
  // would make it on Kubernetes; /scratch is the image's own, owned by node.
  for (const path of ['/blobs']) {
    if (!args.includes(`--volume=${volumeName(name, path)}:${path}`)) continue;
    await podman(['volume', 'create', `--label=${LABEL}=${run}`, volumeName(name, path)]);
    const { stdout } = await podman(['volume', 'inspect', '--format', '{{.Mountpoint}}', volumeName(name, path)]);
    await exec('chown', [`${RUN_AS.uid}:${RUN_AS.gid}`, stdout.trim()]);
  }
  await podman(args, { env: secretEnv });
  const container = { name, spec, url: `http://127.0.0.1:${port}`, env };
  containers.set(name, container);
  await waitReady(container);
  return container;
}

/** Every variable of every service, with this run's endpoints and secrets (the names are services.ts's). */
async function startSystem(): Promise<void> {
  const ports = {
    users: await freePort(),
    media: await freePort(),
    jobs: await freePort(),
    gateway: await freePort(),
    metrics: await freePort(),
    converter1: await freePort(),
    converter2: await freePort(),
    notifier: await freePort(),
  };
  const url = (port: number) => `http://127.0.0.1:${port}`;
  const jwks = `${url(ports.users)}/.well-known/jwks.json`;
  const internalToken = hex(24);
  // The host network: listen on loopback only, not on the machine's own addresses.
  const base = { NODE_ENV: 'production', LOG_LEVEL: 'info', HOST: '127.0.0.1' };
  const trustPrivate = { TRUST_PROXY: 'loopback, uniquelocal' };
  const maxUpload = { MAX_UPLOAD_BYTES: String(2 * 1024 ** 3) };

  await start(serviceSpec('users'), `${prefix}-users`, ports.users, {
    ...base,
    ...trustPrivate,
    PORT: String(ports.users),
    MYSQL_URL: mysqlUrl('users'),
    RABBITMQ_URL: rabbitmqUrl(),
    INTERNAL_API_TOKEN: internalToken,
    // Account mails link to the page, on the gateway's origin.
    PUBLIC_URL: url(ports.gateway),
    JWT_PRIVATE_KEY: generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString(),
    // compose: ${JWT_PREVIOUS_PUBLIC_KEYS:-}, empty unless a key rotation is under way.
    JWT_PREVIOUS_PUBLIC_KEYS: '',
    WEBHOOK_SECRET_KEY: randomBytes(32).toString('base64'),
  });
  await start(serviceSpec('media'), `${prefix}-media`, ports.media, {
    ...base,
    ...trustPrivate,
    ...maxUpload,
    PORT: String(ports.media),
    SHUTDOWN_GRACE_SECONDS: '110',
    MYSQL_URL: mysqlUrl('media'),
    RABBITMQ_URL: rabbitmqUrl(),
    BLOB_DIR: '/blobs',
    SCRATCH_DIR: '/scratch',
    JWKS_URL: jwks,
    PUBLIC_URL: url(ports.gateway),
    DOWNLOAD_SIGNING_KEY: hex(32),
    INTERNAL_API_TOKEN: internalToken,
  });
  await start(serviceSpec('jobs'), `${prefix}-jobs`, ports.jobs, {
    ...base,
    ...trustPrivate,
    PORT: String(ports.jobs),
    MYSQL_URL: mysqlUrl('jobs'),
    RABBITMQ_URL: rabbitmqUrl(),
    JWKS_URL: jwks,
    MEDIA_INTERNAL_URL: url(ports.media),
    INTERNAL_API_TOKEN: internalToken,
  });
  const converter = (n: number, port: number) =>
    start(serviceSpec('converter'), `${prefix}-converter${n}`, port, {
      ...base,
      HEALTH_PORT: String(port),
      RABBITMQ_URL: rabbitmqUrl(),
      MEDIA_INTERNAL_URL: url(ports.media),
      JOBS_INTERNAL_URL: url(ports.jobs),
      INTERNAL_API_TOKEN: internalToken,
      CONCURRENCY: '1',
      CONVERSION_TIMEOUT_SECONDS: '1200',
      SHUTDOWN_GRACE_SECONDS: String(CONVERTER_GRACE_SECONDS),
      SCRATCH_DIR: '/scratch',
      // As the manifests name a worker after its pod: the host network gives every container the host's name.
      WORKER_ID: `${prefix}-converter${n}`,
      READRATE,
    });
  await Promise.all([converter(1, ports.converter1), converter(2, ports.converter2)]);
  gateway = await start(serviceSpec('gateway'), `${prefix}-gateway`, ports.gateway, {
    ...base,
    ...maxUpload,
    PORT: String(ports.gateway),
    SHUTDOWN_GRACE_SECONDS: '50',
    SUBGRAPH_USERS_URL: `${url(ports.users)}/graphql`,
    SUBGRAPH_MEDIA_URL: `${url(ports.media)}/graphql`,
    SUBGRAPH_JOBS_URL: `${url(ports.jobs)}/graphql`,
    JWKS_URL: jwks,
    ALLOWED_ORIGINS: url(ports.gateway),
    TRUST_PROXY: 'loopback',
    METRICS_PORT: String(ports.metrics),
  });
  await start(serviceSpec('notifier'), `${prefix}-notifier`, ports.notifier, {
    ...base,
    HEALTH_PORT: String(ports.notifier),
    RABBITMQ_URL: rabbitmqUrl(),
    MYSQL_URL: mysqlUrl('notifier'),
    USERS_INTERNAL_URL: url(ports.users),
    INTERNAL_API_TOKEN: internalToken,
    PUBLIC_URL: url(ports.gateway),
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    MAIL_FROM,
    NOTIFIER_ID: `${prefix}-notifier`,
  });
}

async function removeEverything(): Promise<void> {
  const ids = (await podman(['ps', '--all', '--quiet', `--filter=label=${LABEL}=${run}`])).stdout.split('\n');
  const running = ids.filter(Boolean);
  if (running.length > 0) await podman(['rm', '--force', '--time=0', ...running]);
  const volumes = (await podman(['volume', 'ls', '--quiet', `--filter=label=${LABEL}=${run}`])).stdout.split('\n');
  // Volumes podman made for a container (its --volume name) carry no label: named after this run's containers.
  const named = (await podman(['volume', 'ls', '--quiet'])).stdout.split('\n').filter((v) => v.startsWith(prefix));
  const all = [...new Set([...volumes, ...named].filter(Boolean))];
  if (all.length > 0) await podman(['volume', 'rm', '--force', ...all]);
}

beforeAll(async () => {
  // npm test has just built them (npm run containers:build); run alone, this builds them (cached layers).
  images = process.env.VIDMP3_IMAGES_BUILT === '1' ? await builtImages() : await ensureImages();
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-smoke-'));
  await createDatabases();
  await rabbitmqctl('add_vhost', vhost);
  await rabbitmqctl('add_user', rabbitUser, rabbitPassword);
  await rabbitmqctl('set_permissions', '-p', vhost, rabbitUser, '.*', '.*', '.*');
  smtp = new MailServer(await freePort());
  await smtp.listen();
  await startSystem();
  user = await signUpUser(gateway.url);
  // Conversion mails are off by default: this user wants them.
  const res = await graphql<{ updateNotificationSettings: { conversionEmails: boolean } }>(
    gateway.url,
    'mutation { updateNotificationSettings(conversionEmails: true) { conversionEmails } }',
    { token: user.token },
  );
  expect(res.data?.updateNotificationSettings, JSON.stringify(res.errors)).toEqual({ conversionEmails: true });
}, 30 * 60_000);

afterAll(async () => {
  const results = await Promise.allSettled([
    removeEverything(),
    dropDatabases(),
    rabbitmqctl('delete_vhost', vhost),
    rabbitmqctl('delete_user', rabbitUser),
    smtp?.close(),
  ]);
  if (dir) await rm(dir, { recursive: true, force: true });
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) throw new Error(`clean-up failed: ${failed.map((f) => String(f.reason)).join('; ')}`);
}, 120_000);

beforeEach(() =>
  onTestFailed(async () => {
    for (const c of containers.values()) console.error(`---- ${c.name}\n${await logsOf(c.name, 40)}`);
  }),
);

// ---- the system, through the gateway -------------------------------------------------------------------------------

interface JobView {
  id: string;
  status: string;
  progress: number;
  attempts: number;
  output: { downloadUrl: string; durationSeconds: number | null } | null;
}
const JOB_FIELDS = 'id status progress attempts output { downloadUrl durationSeconds }';

async function uploadVideo(seconds: number): Promise<string> {
  const path = join(dir, `video-${seconds}s.mp4`);
  await generateVideo(path, seconds);
  const res = await uploadFile(gateway.url, path, { token: user.token });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.uploadVideo.id;
}

async function convert(mediaId: string): Promise<string> {
  const res = await graphql<{ convertMedia: { id: string } }>(
    gateway.url,
    'mutation ($m: ID!) { convertMedia(mediaId: $m) { id } }',
    { token: user.token, variables: { m: mediaId } },
  );
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.convertMedia.id;
}

async function job(id: string): Promise<JobView> {
  const res = await graphql<{ job: JobView }>(gateway.url, `query ($id: ID!) { job(id: $id) { ${JOB_FIELDS} } }`, {
    token: user.token,
    variables: { id },
  });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.job;
}

/** The converter (its WORKER_ID, the container's name) holding a job's claim, from the jobs database. */
async function claimedBy(jobId: string): Promise<string | null> {
  const conn = await mysql.createConnection(`${MYSQL_SERVER}/${databases.jobs}`);
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT claimed_by FROM jobs WHERE id = ?', [jobId]);
    return (rows[0]?.claimed_by as string | null) ?? null;
  } finally {
    await conn.end();
  }
}

/** The job's states as the gateway's graphql-ws subscription delivers them, until it ends. */
async function watch(jobId: string): Promise<JobView[]> {
  const client = createClient({
    url: `${gateway.url.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${user.token}` },
    retryAttempts: 0,
  });
  const states: JobView[] = [];
  try {
    for await (const event of client.iterate<{ jobUpdated: JobView }>({
      query: `subscription ($id: ID!) { jobUpdated(id: $id) { ${JOB_FIELDS} } }`,
      variables: { id: jobId },
    })) {
      expect(event.errors, JSON.stringify(event.errors)).toBeUndefined();
      states.push(event.data!.jobUpdated);
      if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(states.at(-1)!.status)) break;
    }
  } finally {
    await client.dispose();
  }
  return states;
}

/** Downloads the job's mp3 through the gateway and reads it with ffprobe. */
async function probeOutput(view: JobView) {
  const res = await fetch(view.output!.downloadUrl);
  expect(res.status).toBe(200);
  const path = join(dir, `${view.id}.mp3`);
  await writeFile(path, Buffer.from(await res.arrayBuffer()));
  const { stdout } = await exec('ffprobe', [
    '-v',
    'error',
    '-print_format',
    'json',
    '-show_format',
    '-show_streams',
    path,
  ]);
  const probe = JSON.parse(stdout) as {
    format: { format_name: string; duration: string };
    streams: { codec_type: string; codec_name: string }[];
  };
  return {
    format: probe.format.format_name,
    codecs: probe.streams.map((s) => `${s.codec_type}/${s.codec_name}`),
    seconds: Number(probe.format.duration),
  };
}

describe('the system in containers', () => {
  it('answers /readyz in every container, and every image HEALTHCHECK passes there', async () => {
    for (const c of containers.values()) {
      expect((await fetch(`${c.url}/readyz`)).status, `${c.name} /readyz`).toBe(200);
      // Exit 0 only when the image's HEALTHCHECK command succeeds inside the container.
      await expect(podman(['healthcheck', 'run', c.name]), `${c.name} HEALTHCHECK`).resolves.toBeDefined();
    }
    expect([...containers.values()].map((c) => c.spec.name).sort()).toEqual([...DEPLOYABLES, 'converter'].sort());
  });

  it('serves the conversion page from the gateway image (web/dist)', async () => {
    const res = await fetch(`${gateway.url}/`);
    expect(res.status, 'GET / on the gateway: no conversion page (is web/dist in the gateway image?)').toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await res.text()).toMatch(/<script[^>]+src=/);
  });

  it('converts an uploaded video: the subscription reaches SUCCEEDED and the mp3 downloads and probes as mp3', async () => {
    const jobId = await convert(await uploadVideo(3));
    const states = await watch(jobId);
    expect(states.at(-1)?.status).toBe('SUCCEEDED');
    const mp3 = await probeOutput(states.at(-1)!);
    expect([mp3.format, mp3.codecs]).toEqual(['mp3', ['audio/mp3']]);
    expect(mp3.seconds).toBeCloseTo(3, 0);

    // The notifier container heard that the job ended, asked users for the address, and sent the mail.
    const page = `${gateway.url}/?job=${jobId}`;
    const forJob = () => smtp.to(user.email).filter((m) => m.text?.includes(page));
    await expect
      .poll(() => forJob().length, { timeout: 60_000, interval: 250, message: 'the "your mp3 is ready" mail' })
      .toBe(1);
    const [mail] = forJob();
    expect(mail!.subject).toBe('Your mp3 is ready');
    expect(mail!.from?.value.map((v) => v.address)).toEqual(['no-reply@vidmp3.test']);
  }, 180_000);

  it('hands a running job back when its converter container is stopped, and the other converter finishes it', async () => {
    const jobId = await convert(await uploadVideo(LONG_SECONDS));
    await expect
      .poll(
        async () => {
          const now = await job(jobId);
          return now.status === 'RUNNING' && now.progress > 0.05;
        },
        { timeout: 120_000, interval: 200 },
      )
      .toBe(true);
    const holder = await claimedBy(jobId);
    const stopped = [...containers.values()].find((c) => c.name === holder);
    expect(stopped, `the claim's holder ${holder} is one of this run's converters`).toBeDefined();
    const other = [...containers.values()].find((c) => c.spec.name === 'converter' && c !== stopped)!;

    // podman stop: SIGTERM, then SIGKILL after the timeout. Exit 0 means the converter stopped by itself in time.
    await podman(['stop', `--time=${CONVERTER_GRACE_SECONDS + COMPOSE_STOP_MARGIN_SECONDS}`, stopped!.name]);
    expect(await state(stopped!.name)).toMatchObject({ running: false, exitCode: 0 });
    expect(await logsOf(stopped!.name, 200)).toContain('conversion handed back to RabbitMQ');

    await expect.poll(async () => (await job(jobId)).status, { timeout: 120_000, interval: 200 }).toBe('SUCCEEDED');
    expect(await claimedBy(jobId)).toBe(other.name);
    const mp3 = await probeOutput(await job(jobId));
    expect(mp3.format).toBe('mp3');
    expect(mp3.seconds).toBeCloseTo(LONG_SECONDS, 0);
  }, 300_000);
});

// ---- the images themselves ----------------------------------------------------------------------------------------

const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { dev?: boolean }>;
};

interface ImageInspect {
  Config: { User: string; Cmd: string[]; ExposedPorts?: Record<string, unknown> };
  /** Kept only in Docker's image format (podman build --format=docker). */
  Healthcheck?: { Test: string[] };
}

async function withMountedImage<T>(target: Deployable, use: (mount: string) => Promise<T>): Promise<T> {
  const image = images.get(target)!;
  const { stdout } = await podman(['image', 'mount', image]);
  try {
    return await use(stdout.trim());
  } finally {
    await podman(['image', 'unmount', image]);
  }
}

describe('the images', () => {
  it.each(SERVICES.map((s) => [s.name, s] as const))(
    '%s: runs the command, user, port and healthcheck services.ts says',
    async (_name, spec) => {
      const { stdout } = await podman(['image', 'inspect', images.get(spec.name)!]);
      const [{ Config: config, Healthcheck: healthcheck }] = JSON.parse(stdout) as [ImageInspect];
      expect(config.User).toBe(RUN_AS.user);
      expect(config.Cmd).toEqual(spec.command);
      expect(Object.keys(config.ExposedPorts ?? {})).toEqual([`${spec.port.number}/tcp`]);
      expect(healthcheck?.Test.join(' '), 'HEALTHCHECK').toContain(
        `process.env.${spec.port.variable}||${spec.port.number}`,
      );
      const passwd = await withMountedImage(spec.name, (m) => readImageFile(m, '/etc/passwd'));
      expect(passwd).toMatch(new RegExp(`^${RUN_AS.user}:x:${RUN_AS.uid}:${RUN_AS.gid}:`, 'm'));
    },
  );

  it.each(SERVICES.map((s) => [s.name, s] as const))(
    '%s: carries what it runs, no dev dependencies, no sources or tests, no secrets',
    async (_name, spec) => {
      await withMountedImage(spec.name, async (mount) => {
        const files = await listImage(mount);
        const paths = new Set(files.map((f) => f.path));
        expect(spec.files.filter((f) => !paths.has(`/app/${f}`)).map((f) => `/app/${f} is missing`)).toEqual([]);
        expect(paths.has('/usr/bin/ffmpeg') && paths.has('/usr/bin/ffprobe'), 'Debian ffmpeg and ffprobe').toBe(
          spec.ffmpeg,
        );
        expect(paths.has('/usr/bin/prlimit'), "util-linux's prlimit").toBe(true);
        expect(
          devDependencies(
            files.filter((f) => f.path.startsWith('/app/')),
            lock,
          ),
        ).toEqual([]);
        expect(notRunning(files)).toEqual([]);
        expect(await secrets(files, (p) => readImageFile(mount, p))).toEqual([]);
      });
    },
    120_000,
  );

  it('prints their sizes', async () => {
    const sizes = await imageSizes(images);
    console.log(`image sizes:\n${formatSizes(sizes)}`);
    for (const bytes of sizes.values()) expect(bytes).toBeGreaterThan(0);
  });
});
