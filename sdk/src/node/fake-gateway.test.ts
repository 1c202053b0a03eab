// The Node client against a tiny fake gateway (HTTP + WebSocket on one port): watchJob when the gateway refuses
// the WebSocket the way the real one does (4403 for an Origin it does not allow, 4401 for a bad token) must fail
// at once, not after ~30 s of reconnects; closing the client while the WebSocket still waits for connection_ack
// must not leave an unhandled rejection behind when the server then drops it; and convertFile must not replace an
// existing mp3 unless told to, and must say so before uploading anything when it can.
import { writeFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { createClient } from '../index.js';

let server: Server;
let wss: WebSocketServer;
let url: string;
let closeWith: { code: number; reason: string } | undefined;
/** When set, connection_init gets no connection_ack: the socket is handed to this instead. */
let holdAck: ((socket: WebSocket) => void) | undefined;
let connections = 0;
/** The GraphQL operations the HTTP side received, by their first word (`mutation`, `query`) and field. */
let requests: string[] = [];

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
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
    req.on('end', () => {
      if (req.method === 'GET') return void res.end('new mp3 ..');
      requests.push(/uploadVideo|convertMedia|job\b/.exec(body)?.[0] ?? 'other');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ data: { job: job(), convertMedia: job(), uploadVideo: media('m1', 'talk.mp4') } }));
    });
  });
  wss = new WebSocketServer({ server, path: '/graphql' });
  wss.on('connection', (socket) => {
    connections++;
    // Like graphql-ws's server: the refusal comes in answer to connection_init.
    socket.once('message', () => {
      if (holdAck) holdAck(socket);
      else if (closeWith) socket.close(closeWith.code, closeWith.reason);
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

/** Watches until the watch fails (or 5 s pass). The SDK's first reconnect comes after 250–500 ms, so a client that
 * reconnects instead of failing shows up as more than one connection. */
async function watchFailure(): Promise<{ error: unknown }> {
  const client = createClient({ url });
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
        (resolve) => (timer = setTimeout(() => resolve(new Error('still retrying after 5 s')), 5_000)),
      ),
    ]);
    return { error };
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
    const { error } = await watchFailure();
    expect(error).toMatchObject({ name: 'Vidmp3Error', code: 'FORBIDDEN' });
    expect((error as Error).message).toMatch(/origin/i);
    expect(connections).toBe(1);
  });

  it('4401 (a bad token) fails the watch at once with UNAUTHENTICATED and the server reason', async () => {
    closeWith = { code: 4401, reason: 'Your session has expired' };
    connections = 0;
    const { error } = await watchFailure();
    expect(error).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect((error as Error).message).toContain('Your session has expired');
    expect(connections).toBe(1);
  });

  it('4400 (a request the server cannot take) fails the watch at once', async () => {
    closeWith = { code: 4400, reason: 'Invalid message received' };
    connections = 0;
    const { error } = await watchFailure();
    expect(error).toMatchObject({ code: 'NETWORK_ERROR' });
    expect((error as Error).message).toContain('4400');
    expect(connections).toBe(1);
  });
});

const inspectClose = (reason: unknown) =>
  typeof reason === 'object' && reason !== null && 'code' in reason
    ? `close event ${String(reason.code)}`
    : String(reason);

describe('close() while the WebSocket waits for connection_ack', () => {
  beforeAll(() => {
    jobStatus = 'QUEUED'; // so the watch needs the WebSocket
    closeWith = undefined;
  });

  it('leaves no unhandled rejection when the server then drops the connection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const client = createClient({ url });
    try {
      const initialised = new Promise<WebSocket>((resolve) => (holdAck = resolve));
      const watch = (async () => {
        for await (const _ of client.watchJob('j1')) {
          // the queued state
        }
      })().then(
        () => undefined,
        (err: unknown) => err,
      );
      const socket = await initialised; // connection_init received, no connection_ack sent
      client.close();
      socket.terminate(); // the server drops the connection
      // The watch ends (the socket is gone and the client closed) rather than reconnecting.
      expect(await watch).toMatchObject({ name: 'Vidmp3Error', code: 'NETWORK_ERROR' });
      await new Promise((resolve) => setTimeout(resolve, 100)); // unhandled rejections are reported after a tick
      // (Before the fix: graphql-ws's dispose() rejected with the close event, and nothing caught it.)
      expect(unhandled.map((reason) => (reason instanceof Error ? reason.message : inspectClose(reason)))).toEqual([]);
      expect(connections).toBeGreaterThan(0);
    } finally {
      holdAck = undefined;
      process.off('unhandledRejection', onUnhandled);
      client.close();
    }
  });
});

describe('convertFile', () => {
  beforeAll(() => {
    jobStatus = 'SUCCEEDED'; // the query's answer ends the watch
    closeWith = undefined; // and the WebSocket is accepted, then stays silent
  });

  /** A folder with talk.mp4 and, when `mp3` is given, talk.mp3 holding it. */
  async function folderWith(mp3?: string) {
    const folder = await mkdtemp(join(dir, 'convert-'));
    const video = join(folder, 'talk.mp4');
    await writeFile(video, 'video');
    if (mp3 !== undefined) await writeFile(join(folder, 'talk.mp3'), mp3);
    return { folder, video, mp3: join(folder, 'talk.mp3') };
  }
  const alreadyExists = (path: string) => `Cannot write ${path}: the file already exists (pass overwrite: true`;

  it('refuses an existing mp3 beside the input before uploading anything, and replaces it with overwrite', async () => {
    const { folder, video, mp3 } = await folderWith('old mp3');
    const client = createClient({ url });
    try {
      requests = [];
      const phases: string[] = [];
      const refused = client.convertFile(video, { onProgress: (e) => phases.push(e.phase) });
      await expect(refused).rejects.toMatchObject({ code: 'BAD_USER_INPUT', extensions: { path: mp3 } });
      await expect(refused).rejects.toThrow(alreadyExists(mp3));
      expect(requests).toEqual([]);
      expect(phases).toEqual([]);
      expect(await readFile(mp3, 'utf8')).toBe('old mp3');
      expect((await readdir(folder)).sort()).toEqual(['talk.mp3', 'talk.mp4']);

      await expect(client.convertFile(video, { overwrite: true })).resolves.toMatchObject({ path: mp3 });
      expect(requests).toContain('uploadVideo');
      expect(await readFile(mp3, 'utf8')).toBe('new mp3 ..');
      expect((await readdir(folder)).sort()).toEqual(['talk.mp3', 'talk.mp4']);
    } finally {
      client.close();
    }
  });

  it('refuses an existing output file before uploading anything', async () => {
    const { video } = await folderWith();
    const output = join(dir, 'chosen.mp3');
    await writeFile(output, 'old mp3');
    const client = createClient({ url });
    try {
      requests = [];
      const refused = client.convertFile(video, { output });
      await expect(refused).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
      await expect(refused).rejects.toThrow(alreadyExists(output));
      expect(requests).toEqual([]);
      expect(await readFile(output, 'utf8')).toBe('old mp3');
    } finally {
      client.close();
    }
  });

  it('still refuses at the end an mp3 whose name only the server knows (an output directory)', async () => {
    const { folder, video, mp3 } = await folderWith('old mp3');
    const client = createClient({ url });
    try {
      requests = [];
      const refused = client.convertFile(video, { output: folder });
      await expect(refused).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
      await expect(refused).rejects.toThrow(alreadyExists(mp3));
      expect(requests).toContain('uploadVideo');
      expect(await readFile(mp3, 'utf8')).toBe('old mp3');
      expect((await readdir(folder)).sort()).toEqual(['talk.mp3', 'talk.mp4']);
    } finally {
      client.close();
    }
  });

  it('still refuses at the end an mp3 that appeared during the conversion, and leaves no temporary file', async () => {
    const { folder, video, mp3 } = await folderWith();
    const client = createClient({ url });
    try {
      let written = false;
      const refused = client.convertFile(video, {
        onProgress: (e) => {
          if (e.phase !== 'convert' || written) return;
          writeFileSync(mp3, 'someone else');
          written = true;
        },
      });
      await expect(refused).rejects.toThrow(alreadyExists(mp3));
      expect(await readFile(mp3, 'utf8')).toBe('someone else');
      expect((await readdir(folder)).sort()).toEqual(['talk.mp3', 'talk.mp4']);
    } finally {
      client.close();
    }
  });
});
