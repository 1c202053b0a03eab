// The Node client against a tiny fake gateway (HTTP + WebSocket on one port): watchJob when the gateway refuses
// the WebSocket the way the real one does (4403 for an Origin it does not allow, 4401 for a bad token) must fail
// at once, not after ~30 s of reconnects; and convertFile must not replace an existing mp3 unless told to.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { createClient } from '../index.js';

let server: Server;
let wss: WebSocketServer;
let url: string;
let closeWith: { code: number; reason: string } | undefined;
let connections = 0;

let dir: string;
let jobStatus = 'QUEUED';

const media = (id: string, filename: string) => ({
  id,
  kind: id === 'm1' ? 'VIDEO' : 'AUDIO',
  filename,
  contentType: id === 'm1' ? 'video/mp4' : 'audio/mpeg',
  byteSize: 10,
  sha256: '0'.repeat(64),
  durationSeconds: 1,
  createdAt: '2026-01-01T00:00:00.000Z',
  downloadUrl: `${url.replace('/graphql', '')}/files/${id}`,
});
const job = () => ({
  id: 'j1',
  status: jobStatus,
  progress: jobStatus === 'SUCCEEDED' ? 1 : 0,
  attempts: 1,
  createdAt: '2026-01-01T00:00:00.000Z',
  startedAt: null,
  finishedAt: null,
  error: null,
  input: { id: 'm1', filename: 'talk.mp4' },
  output: jobStatus === 'SUCCEEDED' ? media('m2', 'talk.mp3') : null,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-sdk-gateway-'));
  // HTTP: every GraphQL request gets all the fields the SDK's operations read (each takes its own); files are GETs.
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'GET') return void res.end('new mp3 ..');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ data: { job: job(), convertMedia: job(), uploadVideo: media('m1', 'talk.mp4') } }));
    });
  });
  wss = new WebSocketServer({ server, path: '/graphql' });
  wss.on('connection', (socket) => {
    connections++;
    // Like graphql-ws's server: the refusal comes in answer to connection_init.
    socket.once('message', () => {
      if (closeWith) socket.close(closeWith.code, closeWith.reason);
      else socket.send(JSON.stringify({ type: 'connection_ack' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  for (const client of wss.clients) client.terminate();
  await new Promise((resolve) => wss.close(resolve));
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Watches until the watch fails; fails itself if that takes longer than graphql-ws's first retry delay (≥ 250 ms). */
async function watchFailure(): Promise<{ error: unknown; ms: number }> {
  const client = createClient({ url });
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const watch = (async () => {
      for await (const _ of client.watchJob('j1')) {
        // the queued state; the refusal follows
      }
    })();
    const error = await Promise.race([
      watch.then(
        () => new Error('the watch ended without an error'),
        (err: unknown) => err,
      ),
      new Promise<Error>(
        (resolve) => (timer = setTimeout(() => resolve(new Error('still retrying after 2 s')), 2_000)),
      ),
    ]);
    return { error, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
    client.close();
  }
}

describe('a refused WebSocket', () => {
  beforeAll(() => {
    jobStatus = 'QUEUED'; // so only the WebSocket can end the watch
  });

  it('4403 (an Origin the gateway does not allow) fails the watch at once with FORBIDDEN, without reconnecting', async () => {
    closeWith = { code: 4403, reason: 'Forbidden' };
    connections = 0;
    const { error, ms } = await watchFailure();
    expect(error).toMatchObject({ name: 'Vidmp3Error', code: 'FORBIDDEN' });
    expect((error as Error).message).toMatch(/origin/i);
    expect(ms).toBeLessThan(1_000);
    expect(connections).toBe(1);
  });

  it('4401 (a bad token) fails the watch at once with UNAUTHENTICATED and the server reason', async () => {
    closeWith = { code: 4401, reason: 'Your session has expired' };
    connections = 0;
    const { error, ms } = await watchFailure();
    expect(error).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect((error as Error).message).toContain('Your session has expired');
    expect(ms).toBeLessThan(1_000);
    expect(connections).toBe(1);
  });

  it('4400 (a request the server cannot take) fails the watch at once', async () => {
    closeWith = { code: 4400, reason: 'Invalid message received' };
    connections = 0;
    const { error, ms } = await watchFailure();
    expect(error).toMatchObject({ code: 'NETWORK_ERROR' });
    expect((error as Error).message).toContain('4400');
    expect(ms).toBeLessThan(1_000);
    expect(connections).toBe(1);
  });
});

describe('convertFile', () => {
  beforeAll(() => {
    jobStatus = 'SUCCEEDED'; // the query's answer ends the watch
    closeWith = undefined; // and the WebSocket is accepted, then stays silent
  });

  it('leaves an existing mp3 alone unless overwrite is set, and leaves no temporary file', async () => {
    const folder = await mkdtemp(join(dir, 'convert-'));
    const video = join(folder, 'talk.mp4');
    const mp3 = join(folder, 'talk.mp3');
    await writeFile(video, 'video');
    await writeFile(mp3, 'old mp3');
    const client = createClient({ url });
    try {
      const refused = client.convertFile(video);
      await expect(refused).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
      await expect(refused).rejects.toThrow(`Cannot write ${mp3}: the file already exists`);
      expect(await readFile(mp3, 'utf8')).toBe('old mp3');
      expect((await readdir(folder)).sort()).toEqual(['talk.mp3', 'talk.mp4']);

      await expect(client.convertFile(video, { overwrite: true })).resolves.toMatchObject({ path: mp3 });
      expect(await readFile(mp3, 'utf8')).toBe('new mp3 ..');
      expect((await readdir(folder)).sort()).toEqual(['talk.mp3', 'talk.mp4']);
    } finally {
      client.close();
    }
  });
});
