// Uploads under adversity, through the gateway to media: refusals that must not harm the next upload (anyone's),
// and uploads that are slow, stalled or trickling.
import { request, type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import {
  errorCode,
  graphql,
  signUpUser,
  uploadFile,
  UPLOAD_VIDEO,
  type GraphQLResponse,
  type SignedUp,
} from './client.js';
import { generateVideo, sample } from './fixtures.js';
import { startSystem, type System } from './harness.js';

// Media's limit is below the gateway's, so that media refuses an oversized file mid-stream, the gateway still
// sending: the early refusal that left bytes in a kept-alive connection.
const MEDIA_MAX_UPLOAD_BYTES = 1024 * 1024;
const GATEWAY_MAX_UPLOAD_BYTES = 4 * 1024 * 1024;
// Above media's size limit, so that the other refusals come first; Carol keeps a 45 s video (~0.8 MB) stored,
// so that her next upload is refused for the quota mid-stream with most of it unsent. Everyone else's accepted
// uploads are deleted again, so they never run into it.
const STORAGE_QUOTA_BYTES = 1.5 * 1024 * 1024;
// Short enough to run past in a test; both hops (client → gateway, gateway → media) use the same rule.
const TIMEOUTS = {
  REQUEST_BODY_TIMEOUT_SECONDS: '2',
  UPLOAD_IDLE_TIMEOUT_SECONDS: '2',
  UPLOAD_MIN_BYTES_PER_SECOND: '4096',
};

let system: System;
let alice: SignedUp;
let carol: SignedUp;
let bob: SignedUp;
let files: string;

beforeAll(async () => {
  system = await startSystem({
    media: {
      MAX_UPLOAD_BYTES: String(MEDIA_MAX_UPLOAD_BYTES),
      STORAGE_QUOTA_BYTES: String(STORAGE_QUOTA_BYTES),
      ...TIMEOUTS,
    },
    gateway: { MAX_UPLOAD_BYTES: String(GATEWAY_MAX_UPLOAD_BYTES), ...TIMEOUTS },
  });
  [alice, bob] = await Promise.all([signUpUser(system.gatewayUrl), signUpUser(system.gatewayUrl)]);
  files = await mkdtemp(join(tmpdir(), 'vidmp3-adversity-'));
  carol = await signUpUser(system.gatewayUrl);
  const kept = join(files, 'kept.mp4');
  await generateVideo(kept, 45, { faststart: true });
  const stored = await uploadFile(system.gatewayUrl, kept, { token: carol.token });
  expect(stored.errors, JSON.stringify(stored.errors)).toBeUndefined();
}, 120_000);
afterAll(async () => {
  await system?.stop();
  if (files) await rm(files, { recursive: true, force: true });
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

async function fileOf(name: string, bytes: Buffer): Promise<string> {
  const path = join(files, name);
  await writeFile(path, bytes);
  return path;
}

/** Files in media's blob store, scratch files included. */
async function storedFiles(): Promise<string[]> {
  const entries = await readdir(system.blobDir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** How many GraphQL requests media has logged: whether the gateway forwarded anything. */
const mediaGraphqlRequests = () =>
  system.services.media!.logs.filter((l) => l.includes('"path":"/graphql"') && l.includes('"msg":"request"')).length;

/**
 * A refusal the system gives before it has read the whole file, and then a valid upload by someone else,
 * which must succeed. Add a case here for every new early refusal.
 */
interface EarlyRefusal {
  name: string;
  code: string;
  refuse: () => Promise<GraphQLResponse<unknown>>;
}

const earlyRefusals: EarlyRefusal[] = [
  // Sizes matter: about 200 kB was what left a kept-alive connection to media half-read (reproduced with curl).
  ...[56_000, 200_000, 900_000].map((size) => ({
    name: `an upload of ${size} bytes without a token`,
    code: 'UNAUTHENTICATED',
    refuse: async () => uploadFile(system.gatewayUrl, await fileOf(`anonymous-${size}.mp4`, randomBytes(size))),
  })),
  {
    name: 'an upload with a forged token',
    code: 'UNAUTHENTICATED',
    refuse: async () =>
      uploadFile(system.gatewayUrl, await fileOf('forged.mp4', randomBytes(200_000)), {
        token: `${alice.token.slice(0, -4)}AAAA`,
      }),
  },
  ...[200_000, 840_000].map((size) => ({
    name: `a ${size}-byte file that is not a video by its first bytes`,
    code: 'UNSUPPORTED_MEDIA',
    refuse: async () =>
      uploadFile(system.gatewayUrl, await fileOf(`letter-${size}.mp4`, Buffer.alloc(size, 'Dear media,\n')), {
        token: alice.token,
      }),
  })),
  ...[MEDIA_MAX_UPLOAD_BYTES + 200_000, 2 * MEDIA_MAX_UPLOAD_BYTES].map((size) => ({
    name: `a ${size}-byte file, over media’s size limit`,
    code: 'PAYLOAD_TOO_LARGE',
    refuse: async () =>
      uploadFile(system.gatewayUrl, await fileOf(`big-${size}.mp4`, randomBytes(size)), { token: alice.token }),
  })),
  {
    name: 'an upload over the storage quota',
    code: 'QUOTA_EXCEEDED',
    refuse: async () =>
      uploadFile(system.gatewayUrl, await fileOf('over-quota.mp4', randomBytes(900_000)), { token: carol.token }),
  },
  {
    name: 'a file over the gateway’s size limit',
    code: 'PAYLOAD_TOO_LARGE',
    refuse: async () =>
      uploadFile(system.gatewayUrl, await fileOf('huge.mp4', randomBytes(GATEWAY_MAX_UPLOAD_BYTES + 512 * 1024)), {
        token: alice.token,
      }),
  },
];

async function expectAcceptedUpload(user: SignedUp): Promise<void> {
  const res = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), { token: user.token });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  expect(res.data?.uploadVideo.owner.id).toBe(user.id);
  // Deleted again, to keep the user's storage quota free for the next one.
  const deleted = await graphql(system.gatewayUrl, 'mutation ($id: ID!) { deleteMedia(id: $id) }', {
    token: user.token,
    variables: { id: res.data!.uploadVideo.id },
  });
  expect(deleted.errors).toBeUndefined();
}

describe('a refused upload never harms the next one', () => {
  it.each(earlyRefusals)('accepts another user’s upload right after $name', async ({ refuse, code }) => {
    const refused = await refuse();
    expect(errorCode(refused), JSON.stringify(refused.errors)).toBe(code);
    await expectAcceptedUpload(bob);
    // And once more, in case a second pooled connection was the broken one.
    await expectAcceptedUpload(bob);
  });

  it('accepts uploads after a burst of refusals of every kind', async () => {
    for (const { refuse } of earlyRefusals) await refuse();
    await Promise.all([expectAcceptedUpload(alice), expectAcceptedUpload(bob)]);
    await expect
      .poll(() => storedFiles().then((f) => f.filter((p) => p.endsWith('.upload'))), {
        timeout: 10_000,
      })
      .toEqual([]);
  });
});

const BOUNDARY = 'adversity-boundary';

function multipartHead(filename: string, query = UPLOAD_VIDEO): Buffer {
  return Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n` +
      JSON.stringify({ query, variables: { file: null } }) +
      `\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.file"]}\r\n` +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="0"; filename="${filename}"\r\n` +
      'Content-Type: video/mp4\r\n\r\n',
  );
}
const multipartTail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);

interface RawUpload {
  req: ClientRequest;
  /** The answer, whenever it comes (the body may still be open). */
  answer: Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>;
  /** Settles when the connection closes, with the error it closed with, if any. */
  closed: Promise<Error | undefined>;
}

/** A multipart upload written by hand, chunk by chunk, as a slow, stalled or hostile client sends it. */
function rawUpload(token?: string, to = system.gatewayUrl): RawUpload {
  const { hostname, port } = new URL(to);
  const req = request({
    host: hostname,
    port,
    path: '/graphql',
    method: 'POST',
    headers: {
      'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
      'apollo-require-preflight': 'true',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
  });
  let closedWith: Error | undefined;
  req.on('error', (err) => (closedWith = err));
  const closed = new Promise<Error | undefined>((resolve) => req.on('close', () => resolve(closedWith)));
  const answer = new Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>((resolve, reject) => {
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.once('error', reject);
  });
  answer.catch(() => undefined); // a cut connection is what some tests expect
  return { req, answer, closed };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('an upload without a token', () => {
  it('is refused from its headers, before the file is read or anything reaches media', async () => {
    const forwardedBefore = mediaGraphqlRequests();
    const upload = rawUpload();
    upload.req.write(multipartHead('anonymous.mp4'));
    upload.req.write(randomBytes(64 * 1024));
    // The body stays open: the answer can only come if nobody waits for the file.
    const answer = await upload.answer;
    expect(answer.status).toBe(401);
    expect((JSON.parse(answer.body) as GraphQLResponse<unknown>).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    // The connection is not kept for another request with the rest of this body in it.
    expect(answer.headers.connection).toBe('close');
    upload.req.destroy();
    expect(mediaGraphqlRequests()).toBe(forwardedBefore);
    await expectAcceptedUpload(bob);
  });
});

describe('media, refusing an upload before reading it', () => {
  it('closes that connection after its answer, so no caller can reuse it with the body still in it', async () => {
    const upload = rawUpload(undefined, system.services.media!.url);
    upload.req.write(multipartHead('anonymous.mp4', 'mutation ($file: Upload!) { uploadVideo(file: $file) { id } }'));
    upload.req.write(randomBytes(200_000));
    const answer = await upload.answer;
    expect(answer.body).toMatch(/UNAUTHENTICATED/);
    expect(answer.headers.connection).toBe('close');
    // What the caller still sends is read and discarded, then the connection ends (within the linger).
    upload.req.write(randomBytes(64 * 1024));
    await upload.closed;
  });
});

describe('how long an upload may take', () => {
  it('completes a slow but steady upload that runs well past the base request timeout', async () => {
    const video = await readFile(await sample('faststart.mp4'));
    const upload = rawUpload(alice.token);
    const started = Date.now();
    upload.req.write(multipartHead('slow.mp4'));
    // 2 KB every 200 ms (10 KB/s, above the 4 KB/s minimum): about 5 s, past the 2 s base.
    for (let at = 0; at < video.length; at += 2048) {
      upload.req.write(video.subarray(at, at + 2048));
      await pause(200);
    }
    upload.req.end(multipartTail);
    const answer = await upload.answer;
    expect(Date.now() - started).toBeGreaterThan(Number(TIMEOUTS.REQUEST_BODY_TIMEOUT_SECONDS) * 1000);
    const body = JSON.parse(answer.body) as GraphQLResponse<{ uploadVideo: { byteSize: number } }>;
    expect(body.errors, answer.body).toBeUndefined();
    expect(body.data?.uploadVideo.byteSize).toBe(video.length);
  }, 60_000);

  it('cuts an upload that stalls, keeps nothing of it, and serves the next one', async () => {
    const before = await storedFiles();
    const upload = rawUpload(alice.token);
    upload.req.write(multipartHead('stalled.mp4'));
    upload.req.write(randomBytes(32 * 1024));
    // …and nothing more, ever: the gateway must hang up (within a generous bound; the idle limit is 2 s).
    const closed = await Promise.race([upload.closed.then(() => 'closed'), pause(30_000).then(() => 'still open')]);
    expect(closed).toBe('closed');
    await expect.poll(() => storedFiles(), { timeout: 10_000 }).toEqual(before);
    await expectAcceptedUpload(bob);
  }, 60_000);

  it('cuts an upload that trickles below the minimum rate although it never stalls', async () => {
    const upload = rawUpload(alice.token);
    upload.req.write(multipartHead('trickle.mp4'));
    // 100 bytes every 200 ms (500 B/s, far below 4 KB/s), never idle for the 2 s limit.
    const closed = (async () => {
      for (let i = 0; i < 150 && !upload.req.destroyed && upload.req.writable; i++) {
        upload.req.write(randomBytes(100));
        await pause(200);
      }
      return upload.req.destroyed || !upload.req.writable ? 'cut' : 'never cut';
    })();
    const outcome = await Promise.race([upload.closed.then(() => 'cut'), closed]);
    expect(outcome).toBe('cut');
    await expectAcceptedUpload(bob);
  }, 60_000);
});
