// The SDK against the whole system: every service a real process, the real MariaDB, RabbitMQ and ffmpeg.
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { graphql, PASSWORD, uniqueEmail } from '../../e2e/client.js';
import { generateVideo, probeAudio, sample, sampleDurationSeconds, sha256File } from '../../e2e/fixtures.js';
import { CHROMIUM_PATH } from '../../e2e/browser/browser.js';
import { chromium } from 'playwright-core';
import { startSystem, type System } from '../../e2e/harness.js';
import { build } from 'esbuild';
import { createClient, Vidmp3Error, type Client, type ConvertProgress, type Job } from '../src/index.js';

const run = promisify(execFile);
const MAX_UPLOAD_BYTES = 4 * 1024 * 1024;
const sdkDir = fileURLToPath(new URL('..', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));

let system: System;
let url: string;
let workDir: string;
const clients: Client[] = [];

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'vidmp3-sdk-'));
  const limits = { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) };
  // Workers read their input at 8x real time, so a long video converts slowly enough to restart the gateway
  // in the middle; the short samples still take well under a second.
  const worker = { READRATE: '8' };
  system = await startSystem({ gateway: limits, media: limits, worker }, { workers: 1 });
  url = `${system.gatewayUrl}/graphql`;
}, 120_000);
afterAll(async () => {
  for (const client of clients) client.close();
  await system?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

function client(token?: string): Client {
  const c = createClient({ url, token });
  clients.push(c);
  return c;
}

async function signedUp(): Promise<Client> {
  const c = client();
  await c.signUp(uniqueEmail('sdk'), PASSWORD);
  return c;
}

let longVideoPath: Promise<string> | undefined;
/** A 24-second video: about 3 s of conversion at the workers' read rate. */
const longVideo = () =>
  (longVideoPath ??= (async () => {
    const path = join(workDir, 'long.mp4');
    await generateVideo(path, 24);
    return path;
  })());

/** Files in the blob store, temp files included: what a refused upload must not leave behind. */
async function storedFiles(): Promise<string[]> {
  const entries = await readdir(system.blobDir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** How many media the client's user has, asked without the SDK. */
async function mediaCount(c: Client): Promise<number> {
  const res = await graphql<{ me: { media: { edges: unknown[] } } }>(
    system.gatewayUrl,
    '{ me { media { edges { cursor } } } }',
    {
      token: c.token!,
    },
  );
  return res.data!.me.media.edges.length;
}

async function rejection(promise: Promise<unknown>): Promise<Vidmp3Error> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Vidmp3Error);
  return err as Vidmp3Error;
}

describe('accounts', () => {
  it('signs up, logs in with the same password, and reads the account with the token it keeps', async () => {
    const email = uniqueEmail('sdk');
    const first = client();
    const signedUp = await first.signUp(email, PASSWORD);
    expect(signedUp.user.email).toBe(email);
    expect(first.token).toBe(signedUp.accessToken);
    expect(Date.parse(signedUp.expiresAt)).toBeGreaterThan(Date.now());

    const second = client();
    const loggedIn = await second.logIn(email, PASSWORD);
    expect(loggedIn.user.id).toBe(signedUp.user.id);
    expect(await second.me()).toEqual(signedUp.user);
    expect(await client().me()).toBeNull();
  });

  it('answers a wrong password with UNAUTHENTICATED and the request id, and keeps no token', async () => {
    const email = uniqueEmail('sdk');
    await client().signUp(email, PASSWORD);
    const c = client();
    const err = await rejection(c.logIn(email, 'not the right password'));
    expect(err.code).toBe('UNAUTHENTICATED');
    expect(err.message).toMatch(/email or password/i);
    expect(err.requestId).toMatch(/\S+/);
    expect(c.token).toBeUndefined();
  });

  it('reports an unreachable server as NETWORK_ERROR naming it', async () => {
    const err = await rejection(createClient({ url: 'http://127.0.0.1:9/graphql' }).me());
    expect(err.code).toBe('NETWORK_ERROR');
    expect(err.message).toContain('http://127.0.0.1:9');
  });
});

describe('account settings', () => {
  it('lists the sessions going with this one marked, ends another, and turns conversion emails on and off', async () => {
    const email = uniqueEmail('sdk-settings');
    const laptop = client();
    await laptop.signUp(email, PASSWORD);
    const phone = client();
    await phone.logIn(email, PASSWORD);

    const listed = await laptop.sessions();
    expect(listed.map((s) => s.current).sort()).toEqual([false, true]);
    const other = listed.find((s) => !s.current)!;
    await laptop.endSession(other.id);
    expect(await phone.me().catch((e: Vidmp3Error) => e.code)).toBe('UNAUTHENTICATED');
    expect((await laptop.sessions()).map((s) => s.id)).not.toContain(other.id);
    expect(await laptop.endSession(other.id).catch((e: Vidmp3Error) => e.code)).toBe('NOT_FOUND');

    expect(await laptop.notificationSettings()).toEqual({ conversionEmails: false });
    expect(await laptop.updateNotificationSettings({ conversionEmails: true })).toEqual({ conversionEmails: true });
    expect(await laptop.notificationSettings()).toEqual({ conversionEmails: true });
    expect(
      await client()
        .sessions()
        .catch((e: Vidmp3Error) => e.code),
    ).toBe('UNAUTHENTICATED');
  });
});

describe('usage', () => {
  it("reads the signed-in user's usage and limits, and sees an upload and a conversion counted", async () => {
    const c = await signedUp();
    const before = await c.usage();
    expect(before).toMatchObject({ storageBytes: 0, uploadsInProgress: 0, activeJobs: 0, conversionsLastHour: 0 });
    for (const limit of [
      before.storageLimitBytes,
      before.concurrentUploadsLimit,
      before.activeJobsLimit,
      before.conversionsPerHourLimit,
    ]) {
      expect(limit).toBeGreaterThan(0);
    }

    const media = await c.uploadVideo(await sample('faststart.mp4'));
    expect((await c.usage()).storageBytes).toBe(media.byteSize);
    await c.convert(media.id);
    expect((await c.usage()).conversionsLastHour).toBe(1);
  });

  it('answers usage() without a token with UNAUTHENTICATED', async () => {
    expect((await rejection(client().usage())).code).toBe('UNAUTHENTICATED');
  });
});

describe('conversions', () => {
  it('converts a file to an mp3 on disk, reporting upload, conversion and download progress in order', async () => {
    const c = await signedUp();
    const video = join(workDir, 'holiday.mp4');
    await copyFile(await sample('moov-at-end.mp4'), video);
    const events: ConvertProgress[] = [];

    const result = await c.convertFile(video, { options: { bitrateKbps: 96 }, onProgress: (e) => events.push(e) });

    expect(result.path).toBe(join(workDir, 'holiday.mp3'));
    expect(result.job.status).toBe('SUCCEEDED');
    expect(result.media.filename).toBe('holiday.mp4');
    expect(result.output.kind).toBe('AUDIO');
    const mp3 = await probeAudio(result.path!);
    expect(mp3.codec).toBe('mp3');
    expect(mp3.duration).toBeGreaterThan(sampleDurationSeconds - 0.5);
    expect(mp3.duration).toBeLessThan(sampleDurationSeconds + 0.5);
    expect((await readFile(result.path!)).length).toBe(result.output.byteSize);
    expect(await readdir(workDir)).toEqual(expect.arrayContaining(['holiday.mp3'])); // and no .part file left
    expect((await readdir(workDir)).filter((f) => f.endsWith('.part'))).toEqual([]);

    // Phases in order, each one's figures only rising, the upload reaching the file's size.
    const phases = events.map((e) => e.phase).filter((p, i, all) => p !== all[i - 1]);
    expect(phases).toEqual(['upload', 'convert', 'download']);
    const uploads = events.filter((e) => e.phase === 'upload');
    expect(uploads.at(-1)).toEqual({ phase: 'upload', loaded: result.media.byteSize, total: result.media.byteSize });
    expect(uploads.map((e) => e.loaded)).toEqual([...uploads.map((e) => e.loaded)].sort((a, b) => a - b));
    const converts = events.filter((e) => e.phase === 'convert');
    expect(converts.at(-1)).toMatchObject({ status: 'SUCCEEDED', progress: 1 });
    expect(converts.map((e) => e.progress)).toEqual([...converts.map((e) => e.progress)].sort((a, b) => a - b));
    const downloads = events.filter((e) => e.phase === 'download');
    expect(downloads.at(-1)).toMatchObject({ loaded: result.output.byteSize });
  });

  it('watches a job that has already finished: yields its final state once and ends', async () => {
    const c = await signedUp();
    const { job } = await c.convertFile(await sample('faststart.mp4'), { output: workDir });
    const seen = [];
    for await (const state of c.watchJob(job.id)) seen.push(state);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ id: job.id, status: 'SUCCEEDED', progress: 1 });
    const { jobs } = await c.jobs({ first: 5 });
    expect(jobs.map((j) => j.id)).toContain(job.id);
  });

  it("keeps other users' jobs and media out of reach: NOT_FOUND for reading, watching and cancelling", async () => {
    const owner = await signedUp();
    const media = await owner.uploadVideo(await sample('faststart.mp4'));
    const job = await owner.convert(media.id);
    const stranger = await signedUp();
    expect((await rejection(stranger.job(job.id))).code).toBe('NOT_FOUND');
    expect((await rejection(stranger.cancel(job.id))).code).toBe('NOT_FOUND');
    expect((await rejection(stranger.convert(media.id))).code).toBe('NOT_FOUND');
    expect((await rejection(stranger.media(media.id))).code).toBe('NOT_FOUND');
    expect(await owner.media(media.id)).toMatchObject({ id: media.id, filename: 'faststart.mp4', kind: 'VIDEO' });
    const watching = (async () => {
      for await (const _ of stranger.watchJob(job.id)) throw new Error('a stranger saw the job');
    })();
    expect((await rejection(watching)).code).toBe('NOT_FOUND');
    // The owner still can; let the job finish so it writes nothing during the next test.
    let last;
    for await (const state of owner.watchJob(job.id)) last = state;
    expect(last).toMatchObject({ id: job.id, status: 'SUCCEEDED' });
  });

  it('refuses a file that is not a video with UNSUPPORTED_MEDIA and keeps nothing of it', async () => {
    const c = await signedUp();
    const before = await storedFiles();
    const err = await rejection(c.uploadVideo(await sample('text.mp4')));
    expect(err.code).toBe('UNSUPPORTED_MEDIA');
    expect(err.message).toMatch(/not a video we can read/i);
    expect(err.requestId).toMatch(/\S+/);
    expect(await mediaCount(c)).toBe(0);
    expect(await storedFiles()).toEqual(before);
  });

  it('stops an upload over the limit early with PAYLOAD_TOO_LARGE', async () => {
    const c = await signedUp();
    const big = join(workDir, 'big.mp4');
    await writeFile(big, Buffer.alloc(MAX_UPLOAD_BYTES * 4, 1));
    let sent = 0;
    const err = await rejection(c.uploadVideo(big, { onProgress: (p) => (sent = p.loaded) }));
    expect(err.code).toBe('PAYLOAD_TOO_LARGE');
    expect(sent).toBeLessThan(MAX_UPLOAD_BYTES * 4);
    expect(await mediaCount(c)).toBe(0);
  });

  it('uploads from a Node Readable, with the size given for progress', async () => {
    const c = await signedUp();
    const path = await sample('sample.mkv');
    const size = (await readFile(path)).length;
    const progress: number[] = [];
    const media = await c.uploadVideo(createReadStream(path), {
      filename: 'Übung ☃ clip.mkv',
      size,
      onProgress: (p) => progress.push(p.loaded),
    });
    expect(media).toMatchObject({ kind: 'VIDEO', filename: 'Übung ☃ clip.mkv', byteSize: size });
    expect(media.sha256).toBe(await sha256File(path));
    expect(progress.at(-1)).toBe(size);
    const copy = await c.download(media, join(workDir, 'copy.mkv'));
    expect(copy).toEqual({ path: join(workDir, 'copy.mkv'), bytes: size });
    expect(await sha256File(copy.path)).toBe(media.sha256);
    // By id: a fresh link is signed for it; someone else's id is NOT_FOUND, like any unknown one.
    const byId = await c.download(media.id, join(workDir, 'by-id.mkv'));
    expect(await sha256File(byId.path)).toBe(media.sha256);
    const other = await signedUp();
    expect((await rejection(other.download(media.id, join(workDir, 'stolen.mkv')))).code).toBe('NOT_FOUND');
  });
});

describe('watching across a lost connection', () => {
  it('reconnects after the gateway restarts mid-conversion and still sees the job finish', async () => {
    const c = await signedUp();
    const job = await c.convert((await c.uploadVideo(await longVideo())).id);
    const seen: Job[] = [];
    let restarted: Promise<unknown> | undefined;
    for await (const state of c.watchJob(job.id)) {
      seen.push(state);
      if (!restarted && state.status === 'RUNNING') restarted = system.restart('gateway');
    }
    expect(restarted).toBeDefined();
    await restarted;
    expect(seen.at(-1)).toMatchObject({ id: job.id, status: 'SUCCEEDED', progress: 1 });
    // Each state newer than the one before: nothing replayed after the reconnect.
    const progress = seen.map((s) => s.progress);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
  });
});

describe('giving up', () => {
  it('aborting convertFile while the job converts cancels the job and writes no mp3', async () => {
    const c = await signedUp();
    const video = join(workDir, 'given-up.mp4');
    await copyFile(await longVideo(), video);
    const controller = new AbortController();
    const err = await rejection(
      c.convertFile(video, {
        signal: controller.signal,
        onProgress: (e) => {
          if (e.phase === 'convert' && e.status === 'RUNNING') controller.abort();
        },
      }),
    );
    expect(err.code).toBe('ABORTED');
    const { jobs } = await c.jobs({ first: 1 });
    const jobId = jobs[0]?.id;
    expect(jobId).toBeDefined();
    await expect.poll(async () => (await c.job(jobId!))?.status, { timeout: 10_000 }).toBe('CANCELLED');
    expect((await readdir(workDir)).filter((f) => f.startsWith('given-up.mp3'))).toEqual([]);
  });
});

describe('in a browser', () => {
  // The browser entry, bundled as the web page bundles it, runs in headless Chromium on the gateway's origin (the
  // page and the bundle are served by request interception; everything else reaches the real gateway).
  it('signs up, uploads a File with progress, watches over the native WebSocket and downloads a Blob', async () => {
    const bundle = await build({
      stdin: { contents: "export * from '@vidmp3/sdk';", resolveDir: sdkDir },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
    });
    // The page is served by interception, so Chromium cannot place it on the loopback network like the gateway,
    // and its local network access checks would block the WebSocket; the web page, served by the gateway, is not.
    const browser = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-features=LocalNetworkAccessChecks'],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      await page.route('**/__sdk-test/**', (route) =>
        route.request().url().endsWith('.js')
          ? route.fulfill({ contentType: 'text/javascript', body: bundle.outputFiles[0]!.text })
          : route.fulfill({ contentType: 'text/html', body: '<!doctype html><input type="file" id="video">' }),
      );
      await page.goto(`${system.gatewayUrl}/__sdk-test/index.html`);
      await page.setInputFiles('#video', await sample('sample.webm'));
      // Plain JavaScript, run in the page (the tests are not compiled with DOM types).
      const script = `(async () => {
        const { createClient, Vidmp3Error } = await import('/__sdk-test/sdk.js');
        const client = createClient({ url: location.origin + '/graphql' });
        await client.signUp(${JSON.stringify(uniqueEmail('browser'))}, ${JSON.stringify(PASSWORD)});
        const uploads = [];
        const file = document.querySelector('#video').files[0];
        const media = await client.uploadVideo(file, { onProgress: (p) => uploads.push(p) });
        const job = await client.convert(media.id, { bitrateKbps: 64 });
        const states = [];
        for await (const state of client.watchJob(job.id)) states.push(state);
        const mp3 = await client.download(states.at(-1).output);
        const refused = await client
          .uploadVideo(new File(['not a video'], 'notes.mp4'))
          .catch((err) => ({ isVidmp3Error: err instanceof Vidmp3Error, code: err.code }));
        // Over the limit: the gateway answers before the browser has sent it all, and the page still hears why.
        const tooLarge = await client
          .uploadVideo(new File([new Uint8Array(${MAX_UPLOAD_BYTES} + 1024 * 1024)], 'huge.mp4'))
          .then(() => ({ code: 'accepted' }), (err) => ({ code: err.code }));
        client.close();
        const bytes = new Uint8Array(await mp3.arrayBuffer());
        let binary = '';
        for (const byte of bytes) binary += String.fromCharCode(byte);
        return { media, uploads, last: states.at(-1), mp3: btoa(binary), refused, tooLarge };
      })()`;
      const result = await page.evaluate<{
        media: { filename: string; byteSize: number };
        uploads: { loaded: number; total: number }[];
        last: Job;
        mp3: string;
        refused: { isVidmp3Error: boolean; code: string };
        tooLarge: { code: string };
      }>(script);
      expect(errors).toEqual([]);
      expect(result.media.filename).toBe('sample.webm');
      expect(result.uploads.at(-1)).toEqual({ loaded: result.media.byteSize, total: result.media.byteSize });
      expect(result.last).toMatchObject({ status: 'SUCCEEDED', progress: 1 });
      expect(result.refused).toEqual({ isVidmp3Error: true, code: 'UNSUPPORTED_MEDIA' });
      expect(result.tooLarge).toEqual({ code: 'PAYLOAD_TOO_LARGE' });
      const mp3Path = join(workDir, 'from-browser.mp3');
      await writeFile(mp3Path, Buffer.from(result.mp3, 'base64'));
      expect((await probeAudio(mp3Path)).codec).toBe('mp3');
    } finally {
      await browser.close();
    }
  });
});

describe('the README', () => {
  it('runs its ten-line example as written and gets an mp3', async () => {
    const readme = await readFile(join(sdkDir, 'README.md'), 'utf8');
    const example = /## Ten lines[^\n]*\n+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example).toBeDefined();
    expect(example!.trimEnd().split('\n').length).toBeLessThanOrEqual(10);

    // A project of its own that has @vidmp3/sdk installed (this package, linked), like a user's.
    const project = await mkdtemp(join(workDir, 'readme-'));
    await mkdir(join(project, 'node_modules', '@vidmp3'), { recursive: true });
    await symlink(sdkDir, join(project, 'node_modules', '@vidmp3', 'sdk'));
    await writeFile(join(project, 'example.mts'), example!);
    await copyFile(await sample('sample.webm'), join(project, 'my-video.webm'));

    const { stdout } = await run(join(root, 'node_modules', '.bin', 'tsx'), ['example.mts'], {
      cwd: project,
      env: {
        ...process.env,
        VIDMP3_URL: url,
        VIDMP3_EMAIL: uniqueEmail('readme'),
        VIDEO: join(project, 'my-video.webm'),
      },
      timeout: 60_000,
    });
    expect(stdout).toContain(`mp3 written to ${join(project, 'my-video.mp3')}`);
    expect(stdout).toMatch(/^upload \d+ of \d+ bytes$/m);
    expect(stdout).toMatch(/^convert 1$/m);
    const mp3 = await probeAudio(join(project, 'my-video.mp3'));
    expect(mp3.codec).toBe('mp3');
    expect(Math.abs(mp3.duration - sampleDurationSeconds)).toBeLessThan(0.5);
  });
});
