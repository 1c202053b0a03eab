import { createHash, createHmac } from 'node:crypto';
import { copyFile, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { errorCode, graphql, signUpUser, uploadFile, type SignedUp, type UploadedMedia } from './client.js';
import { generateVideo, sample, sha256File, type SampleName } from './fixtures.js';
import { MYSQL_SERVER, startSystem, type System } from './harness.js';

// Small enough that an over-limit file is cheap to make, large enough for every sample.
const MAX_UPLOAD_BYTES = 2 * 1024 * 1024;

let system: System;
let alice: SignedUp;
let bob: SignedUp;

beforeAll(async () => {
  const limits = { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) };
  system = await startSystem({ media: limits, gateway: limits });
  [alice, bob] = await Promise.all([signUpUser(system.gatewayUrl), signUpUser(system.gatewayUrl)]);
});
afterAll(async () => {
  await system?.stop();
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function upload(name: SampleName, user = alice, filename?: string): Promise<UploadedMedia> {
  const res = await uploadFile(system.gatewayUrl, await sample(name), {
    token: user.token,
    ...(filename ? { filename } : {}),
  });
  expect(res.errors, JSON.stringify(res.errors)).toBeUndefined();
  return res.data!.uploadVideo;
}

/** Files in the blob store, temp files included: what a refused upload must not leave behind. */
async function storedFiles(): Promise<string[]> {
  const entries = await readdir(system.blobDir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Uploads media has refused so far, from its /metrics: counted only once the refused upload's scratch is gone. */
async function mediaRejections(): Promise<number> {
  const text = await (await fetch(`${system.services.media!.url}/metrics`)).text();
  return [...text.matchAll(/^vidmp3_uploads_total\{[^}]*outcome="rejected"[^}]*\} (\d+)/gm)].reduce(
    (sum, [, n]) => sum + Number(n),
    0,
  );
}

async function mediaRows(ownerId: string): Promise<number> {
  const conn = await mysql.createConnection(`${MYSQL_SERVER}/${system.databases.media}`);
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM media WHERE owner_id = ?', [
      ownerId,
    ]);
    return Number(rows[0]!.n);
  } finally {
    await conn.end();
  }
}

describe('uploading videos through the gateway', () => {
  const accepted: [SampleName, string][] = [
    ['moov-at-end.mp4', 'video/mp4'],
    ['faststart.mp4', 'video/mp4'],
    ['sample.mkv', 'video/x-matroska'],
    ['sample.webm', 'video/webm'],
    ['sample.mov', 'video/quicktime'],
  ];

  it.each(accepted)('stores %s with the facts a client needs, and gives it back byte for byte', async (name, type) => {
    const path = await sample(name);
    const media = await upload(name);
    expect(media).toMatchObject({
      kind: 'VIDEO',
      filename: name,
      contentType: type,
      byteSize: (await stat(path)).size,
      sha256: await sha256File(path),
      owner: { id: alice.id, email: alice.email },
    });
    expect(media.durationSeconds).toBeCloseTo(3, 0);

    const download = await fetch(media.downloadUrl);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe(type);
    expect(download.headers.get('content-disposition')).toMatch(new RegExp(`filename="?${name.replace('.', '\\.')}"?`));
    expect(sha256(new Uint8Array(await download.arrayBuffer()))).toBe(media.sha256);
  });

  it('serves byte ranges, HEAD and conditional requests on the download URL', async () => {
    const path = await sample('moov-at-end.mp4');
    const bytes = await readFile(path);
    const media = await upload('moov-at-end.mp4');

    const middle = await fetch(media.downloadUrl, { headers: { range: 'bytes=100-1123' } });
    expect(middle.status).toBe(206);
    expect(middle.headers.get('content-range')).toBe(`bytes 100-1123/${bytes.length}`);
    expect(Buffer.from(await middle.arrayBuffer()).equals(bytes.subarray(100, 1124))).toBe(true);

    const tail = await fetch(media.downloadUrl, { headers: { range: 'bytes=-10' } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(bytes.length - 10))).toBe(true);

    const beyond = await fetch(media.downloadUrl, { headers: { range: `bytes=${bytes.length + 10}-` } });
    expect(beyond.status).toBe(416);

    const head = await fetch(media.downloadUrl, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(bytes.length));
    expect(head.headers.get('accept-ranges')).toBe('bytes');

    const etag = head.headers.get('etag')!;
    expect(etag).toBe(`"${media.sha256}"`);
    expect((await fetch(media.downloadUrl, { headers: { 'if-none-match': etag } })).status).toBe(304);
  });

  it('keeps a display-safe filename: no directories or control characters', async () => {
    const media = await upload('faststart.mp4', alice, '..\\..\\windows\\pass\u202ewd.mp4');
    expect(media.filename).toBe('passwd.mp4');
  });

  it('lists the user’s media newest first, page by page', async () => {
    const carol = await signUpUser(system.gatewayUrl);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await upload('faststart.mp4', carol)).id);
    const first = await graphql<{
      me: { media: { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string } } };
    }>(system.gatewayUrl, '{ me { media(first: 2) { edges { node { id } } pageInfo { hasNextPage endCursor } } } }', {
      token: carol.token,
    });
    expect(first.errors).toBeUndefined();
    expect(first.data!.me.media.edges.map((e) => e.node.id)).toEqual([ids[2], ids[1]]);
    expect(first.data!.me.media.pageInfo.hasNextPage).toBe(true);
    const second = await graphql<{
      me: { media: { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean } } };
    }>(
      system.gatewayUrl,
      'query ($after: String) { me { media(first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage } } } }',
      { token: carol.token, variables: { after: first.data!.me.media.pageInfo.endCursor } },
    );
    expect(second.data!.me.media.edges.map((e) => e.node.id)).toEqual([ids[0]]);
    expect(second.data!.me.media.pageInfo.hasNextPage).toBe(false);
  });
});

describe('refused uploads leave nothing behind', () => {
  const refused: [SampleName, RegExp][] = [
    ['empty.mp4', /empty/i],
    ['text.mp4', /not a video we can read/i],
    ['truncated.mp4', /^The file is incomplete/],
    ['playlist.m3u8', /not a video we can read/i],
    ['unknown.bin', /not a video we can read/i],
    ['no-audio.mp4', /no audio/i],
    ['audio-only.m4a', /no video/i],
  ];

  it.each(refused)('refuses %s with UNSUPPORTED_MEDIA and keeps no row and no blob', async (name, message) => {
    const dave = await signUpUser(system.gatewayUrl);
    const before = await storedFiles();
    const res = await uploadFile(system.gatewayUrl, await sample(name), { token: dave.token });
    expect(errorCode(res)).toBe('UNSUPPORTED_MEDIA');
    expect(res.errors![0]!.message).toMatch(message);
    expect(res.errors![0]!.message).not.toMatch(/\/tmp|\/data|ffprobe/);
    expect(await mediaRows(dave.id)).toBe(0);
    expect(await storedFiles()).toEqual(before);
  });

  it('refuses a 12 s mp4 cut after its first 30 kB (header intact) as incomplete, and keeps nothing', async () => {
    const dave = await signUpUser(system.gatewayUrl);
    const whole = join(tmpdir(), `vidmp3-whole-${process.pid}.mp4`);
    const cut = join(tmpdir(), `vidmp3-cut-${process.pid}.mp4`);
    await generateVideo(whole, 12, { faststart: true });
    await copyFile(whole, cut);
    await truncate(cut, 30_000);
    const before = await storedFiles();
    const res = await uploadFile(system.gatewayUrl, cut, { token: dave.token });
    expect(errorCode(res), JSON.stringify(res)).toBe('UNSUPPORTED_MEDIA');
    expect(res.errors![0]!.message).toMatch(/^The file is incomplete: its data ends at [\d.]+ s of the 12\.0 s/);
    expect(await mediaRows(dave.id)).toBe(0);
    expect(await storedFiles()).toEqual(before);
    // The same file whole is accepted, with its length.
    const accepted = await uploadFile(system.gatewayUrl, whole, { token: dave.token });
    expect(accepted.errors, JSON.stringify(accepted.errors)).toBeUndefined();
    expect(accepted.data!.uploadVideo.durationSeconds).toBeCloseTo(12, 0);
    await Promise.all([rm(whole, { force: true }), rm(cut, { force: true })]);
  });

  it('refuses a file over the size limit with PAYLOAD_TOO_LARGE', async () => {
    const dave = await signUpUser(system.gatewayUrl);
    const big = join(tmpdir(), `vidmp3-big-${process.pid}.mp4`);
    await writeFile(big, Buffer.alloc(MAX_UPLOAD_BYTES + 4096, 1));
    const before = await storedFiles();
    const refusedBefore = await mediaRejections();
    const res = await uploadFile(system.gatewayUrl, big, { token: dave.token });
    expect(errorCode(res)).toBe('PAYLOAD_TOO_LARGE');
    // The gateway answers as soon as the file passes the limit; media then sees its request cut off and
    // removes its scratch file, a moment later: once it has counted the refusal, the scratch file is gone.
    await expect.poll(() => mediaRejections(), { timeout: 10_000 }).toBeGreaterThan(refusedBefore);
    expect(await storedFiles()).toEqual(before);
    expect(await mediaRows(dave.id)).toBe(0);
  });

  it('refuses an upload without a token, before storing anything', async () => {
    const before = await storedFiles();
    const res = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'));
    expect(errorCode(res)).toBe('UNAUTHENTICATED');
    expect(await storedFiles()).toEqual(before);
  });

  it('keeps nothing when the client goes away mid-upload', async () => {
    const dave = await signUpUser(system.gatewayUrl);
    const before = await storedFiles();
    const boundary = 'x-test-boundary';
    const head =
      `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n` +
      JSON.stringify({
        query: 'mutation ($file: Upload!) { uploadVideo(file: $file) { id } }',
        variables: { file: null },
      }) +
      `\r\n--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.file"]}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="cut.mp4"\r\n` +
      'Content-Type: video/mp4\r\n\r\n';
    const controller = new AbortController();
    let reachedScratch = false;
    const body = new ReadableStream<Uint8Array>({
      async start(stream) {
        stream.enqueue(new TextEncoder().encode(head));
        stream.enqueue(new Uint8Array(256 * 1024).fill(7));
        // The upload reaches media's scratch space (a file appears under the blob store)…
        const deadline = Date.now() + 10_000;
        while (!reachedScratch && Date.now() < deadline) {
          reachedScratch = (await storedFiles()).some((file) => !before.includes(file));
          if (!reachedScratch) await new Promise((r) => setTimeout(r, 20));
        }
        controller.abort(); // …and the client disappears
      },
    });
    await expect(
      fetch(`${system.gatewayUrl}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'apollo-require-preflight': 'true',
          authorization: `Bearer ${dave.token}`,
        },
        body,
        duplex: 'half', // Node's fetch needs it for a streamed body; the DOM's RequestInit does not know it
        signal: controller.signal,
      } as RequestInit),
    ).rejects.toThrow();
    expect(reachedScratch).toBe(true);
    await expect.poll(() => storedFiles(), { timeout: 5_000 }).toEqual(before);
    expect(await mediaRows(dave.id)).toBe(0);
  });

  it('answers a malformed multipart body with BAD_USER_INPUT, and stays up', async () => {
    const boundary = 'x-bad';
    const body =
      `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n` +
      JSON.stringify({
        query: 'mutation ($file: Upload!) { uploadVideo(file: $file) { id } }',
        variables: { file: null },
      }) +
      `\r\n--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.file"]}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="a\u0007.mp4"\r\n\r\nxx\r\n--${boundary}--\r\n`;
    const res = await fetch(`${system.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': `multipart/form-data; boundary=${boundary}`,
        'apollo-require-preflight': 'true',
        authorization: `Bearer ${alice.token}`,
      },
      body,
    });
    const json = (await res.json()) as { errors?: { extensions?: { code?: string } }[] };
    expect(json.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect((await fetch(`${system.gatewayUrl}/healthz`)).status).toBe(200);
  });

  it('refuses a multipart request without a CSRF preflight header', async () => {
    const res = await uploadFile(system.gatewayUrl, await sample('faststart.mp4'), {
      token: alice.token,
      headers: { 'apollo-require-preflight': '' },
    }).catch((err: unknown) => err);
    expect(JSON.stringify(res)).toMatch(/Cross-Site Request Forgery|CSRF/);
  });
});

describe('only the owner reaches a media', () => {
  it('answers NOT_FOUND to another user for reading and deleting, and lists nothing of theirs', async () => {
    const media = await upload('faststart.mp4', alice);
    const read = await graphql(system.gatewayUrl, 'query ($id: ID!) { media(id: $id) { id downloadUrl } }', {
      token: bob.token,
      variables: { id: media.id },
    });
    expect(errorCode(read)).toBe('NOT_FOUND');
    const del = await graphql(system.gatewayUrl, 'mutation ($id: ID!) { deleteMedia(id: $id) }', {
      token: bob.token,
      variables: { id: media.id },
    });
    expect(errorCode(del)).toBe('NOT_FOUND');
    const list = await graphql<{ me: { media: { edges: { node: { id: string } }[] } } }>(
      system.gatewayUrl,
      '{ me { media { edges { node { id } } } } }',
      { token: bob.token },
    );
    expect(list.data!.me.media.edges.map((e) => e.node.id)).not.toContain(media.id);
    // …and the owner still has it.
    const own = await graphql(system.gatewayUrl, 'query ($id: ID!) { media(id: $id) { id } }', {
      token: alice.token,
      variables: { id: media.id },
    });
    expect(own.data).toEqual({ media: { id: media.id } });
  });

  it('answers NOT_FOUND for an id that does not exist, the same as for a foreign one', async () => {
    const res = await graphql(system.gatewayUrl, '{ media(id: "00000000-0000-0000-0000-000000000000") { id } }', {
      token: alice.token,
    });
    expect(errorCode(res)).toBe('NOT_FOUND');
  });

  it('refuses a download URL whose signature was altered or whose time ran out', async () => {
    const media = await upload('faststart.mp4', alice);
    const tampered = new URL(media.downloadUrl);
    tampered.searchParams.set('sig', `${tampered.searchParams.get('sig')!.slice(0, -2)}AA`);
    expect((await fetch(tampered)).status).toBe(403);

    const otherFile = new URL(media.downloadUrl);
    otherFile.pathname = '/files/00000000-0000-0000-0000-000000000000';
    expect((await fetch(otherFile)).status).toBe(403);

    // An expired link signed with the real key (read from the service's key file) is still refused.
    const key = Buffer.from((await readFile(join(system.keysDir, 'media-download.key'), 'utf8')).trim(), 'base64url');
    const expires = Math.floor(Date.now() / 1000) - 5;
    const expired = new URL(media.downloadUrl);
    expired.searchParams.set('expires', String(expires));
    expired.searchParams.set('sig', createHmac('sha256', key).update(`${media.id}.${expires}`).digest('base64url'));
    const res = await fetch(expired);
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/expired/i);
  });

  it('deletes the media and its bytes, after which it is NOT_FOUND and the download link answers 404', async () => {
    const media = await upload('faststart.mp4', alice);
    const filesBefore = (await storedFiles()).length;
    const del = await graphql(system.gatewayUrl, 'mutation ($id: ID!) { deleteMedia(id: $id) }', {
      token: alice.token,
      variables: { id: media.id },
    });
    expect(del.data).toEqual({ deleteMedia: true });
    expect((await storedFiles()).length).toBe(filesBefore - 1);
    expect((await fetch(media.downloadUrl)).status).toBe(404);
    const read = await graphql(system.gatewayUrl, 'query ($id: ID!) { media(id: $id) { id } }', {
      token: alice.token,
      variables: { id: media.id },
    });
    expect(errorCode(read)).toBe('NOT_FOUND');
  });
});

describe('the workers’ internal API', () => {
  const internal = (path: string, init: RequestInit = {}, token = 'vidmp3-development-internal-token') =>
    fetch(`${system.services.media!.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) },
    });

  it('is not reachable through the gateway', async () => {
    const res = await fetch(`${system.gatewayUrl}/internal/media/x/content`);
    expect(res.status).toBe(404);
  });

  it('refuses callers without the service token', async () => {
    const media = await upload('faststart.mp4');
    expect((await internal(`/internal/media/${media.id}/content`, {}, 'wrong-token-wrong-token')).status).toBe(401);
  });

  it('streams a media’s bytes, whole or by range, so ffmpeg can seek', async () => {
    const bytes = await readFile(await sample('moov-at-end.mp4'));
    const media = await upload('moov-at-end.mp4');
    const whole = await internal(`/internal/media/${media.id}/content`);
    expect(sha256(new Uint8Array(await whole.arrayBuffer()))).toBe(media.sha256);
    const range = await internal(`/internal/media/${media.id}/content`, { headers: { range: 'bytes=-8' } });
    expect(range.status).toBe(206);
    expect(Buffer.from(await range.arrayBuffer()).equals(bytes.subarray(-8))).toBe(true);
  });

  it('stores a job’s mp3 once, however many times the job writes it', async () => {
    const input = await upload('faststart.mp4');
    const mp3 = await readFile(await sample('sample.mp3'));
    const write = () =>
      internal('/internal/jobs/job-e2e-1/output', {
        method: 'PUT',
        headers: { 'x-owner-id': alice.id, 'x-source-media-id': input.id },
        body: mp3,
      });
    const [first, second] = await Promise.all([write(), write()]);
    const third = await write();
    const bodies = (await Promise.all([first.json(), second.json(), third.json()])) as {
      id: string;
      created: boolean;
    }[];
    expect(new Set(bodies.map((b) => b.id)).size).toBe(1);
    expect(bodies.filter((b) => b.created)).toHaveLength(1);

    const list = await graphql<{ me: { media: { edges: { node: { id: string; filename: string } }[] } } }>(
      system.gatewayUrl,
      '{ me { media(kind: AUDIO) { edges { node { id filename contentType } } } } }',
      { token: alice.token },
    );
    expect(list.data!.me.media.edges.filter((e) => e.node.id === bodies[0]!.id)).toHaveLength(1);
    expect(list.data!.me.media.edges[0]!.node).toMatchObject({ filename: 'faststart.mp3', contentType: 'audio/mpeg' });
  });

  it('answers 413 to an output over the size limit, and keeps nothing', async () => {
    const input = await upload('faststart.mp4');
    const [filesBefore, rowsBefore] = [await storedFiles(), await mediaRows(alice.id)];
    // Streamed in small chunks, as a worker sends an mp3, well past the limit.
    async function* chunks() {
      for (let sent = 0; sent < MAX_UPLOAD_BYTES * 8; sent += 64 * 1024) yield Buffer.alloc(64 * 1024, 0xff);
    }
    const res = await internal('/internal/jobs/job-e2e-big/output', {
      method: 'PUT',
      headers: { 'x-owner-id': alice.id, 'x-source-media-id': input.id },
      body: Readable.toWeb(Readable.from(chunks())) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: 'PAYLOAD_TOO_LARGE' });
    expect(await mediaRows(alice.id)).toBe(rowsBefore);
    await expect.poll(() => storedFiles(), { timeout: 5_000 }).toEqual(filesBefore);
  });

  it('refuses to store an output for a source the owner does not have', async () => {
    const input = await upload('faststart.mp4', alice);
    const res = await internal('/internal/jobs/job-e2e-2/output', {
      method: 'PUT',
      headers: { 'x-owner-id': bob.id, 'x-source-media-id': input.id },
      body: await readFile(await sample('sample.mp3')),
    });
    expect(res.status).toBe(404);
  });
});
