// The Node transfers against a small local HTTP server: the multipart body's shape, refusals, and downloads
// that fail half-way (the whole system is exercised in sdk/test/client.test.ts).
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodePlatform } from './platform.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let handler: Handler = (_req, res) => res.end();
let server: Server;
let base: string;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-sdk-node-'));
  server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

async function body(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += (chunk as Buffer).toString('latin1');
  return text;
}

const upload = (input: string, extra: Partial<Parameters<typeof nodePlatform.upload>[0]> = {}) =>
  nodePlatform.upload({
    url: `${base}/graphql`,
    headers: { 'apollo-require-preflight': 'true' },
    operations: '{"query":"mutation ($file: Upload!) { uploadVideo(file: $file) { id } }","variables":{"file":null}}',
    map: '{"0":["variables.file"]}',
    input,
    ...extra,
  });

describe('Node uploads', () => {
  it('send operations, map and then the file, as the multipart request spec orders them', async () => {
    const file = join(dir, 'clip.mp4');
    await writeFile(file, 'video bytes');
    let seen: { headers: IncomingMessage['headers']; text: string } | undefined;
    handler = (req, res) => {
      void body(req).then((text) => {
        seen = { headers: req.headers, text };
        res.setHeader('x-request-id', 'req-1');
        res.end('{"data":{}}');
      });
    };
    const progress: unknown[] = [];
    const answer = await upload(file, { onProgress: (p) => progress.push(p) });
    expect(answer.status).toBe(200);
    expect(answer.header('x-request-id')).toBe('req-1');
    expect(seen!.headers['apollo-require-preflight']).toBe('true');
    const boundary = /boundary=(\S+)/.exec(seen!.headers['content-type']!)![1]!;
    const parts = seen!.text.split(`--${boundary}`);
    expect(parts).toHaveLength(5); // preamble, 3 parts, the closing "--"
    expect(parts[1]).toContain('name="operations"');
    expect(parts[2]).toContain('name="map"\r\n\r\n{"0":["variables.file"]}');
    expect(parts[3]).toContain('name="0"; filename="clip.mp4"');
    expect(parts[3]!.endsWith('\r\n\r\nvideo bytes\r\n')).toBe(true);
    expect(parts[4]).toBe('--\r\n');
    expect(progress).toEqual([
      { loaded: 0, total: 11 },
      { loaded: 11, total: 11 },
    ]);
  });

  it('refuse a path that is not a readable file with BAD_USER_INPUT, before any request', async () => {
    await expect(upload(join(dir, 'missing.mp4'))).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      message: `Cannot read ${join(dir, 'missing.mp4')}: no such file or directory`,
    });
    await expect(upload(dir)).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      message: `Cannot read ${dir}: not a file`,
    });
  });

  it('fail with NETWORK_ERROR when the server takes the file and then never answers', async () => {
    const file = join(dir, 'unanswered.mp4');
    await writeFile(file, 'video bytes');
    handler = (req) => void body(req); // reads it all, answers nothing
    const error = await upload(file, { idleTimeoutMs: 300 }).then(
      () => undefined,
      (err: unknown) => err as Error & { code: string },
    );
    expect(error?.code).toBe('NETWORK_ERROR');
    expect(error?.message).toContain('ETIMEDOUT');
  });
});

describe('Node downloads', () => {
  it('write the whole file under its name, and nothing when the transfer breaks off', async () => {
    handler = (_req, res) => {
      res.setHeader('content-length', '8');
      res.end('complete');
    };
    const whole = await nodePlatform.downloadToFile!(`${base}/files/a`, join(dir, 'a.mp3'), {});
    expect(whole).toEqual({ path: join(dir, 'a.mp3'), bytes: 8 });
    expect(await readFile(whole.path, 'utf8')).toBe('complete');

    handler = (_req, res) => {
      res.setHeader('content-length', String(1 << 20));
      res.write(Buffer.alloc(64 * 1024));
      setTimeout(() => res.destroy(), 50);
    };
    await expect(nodePlatform.downloadToFile!(`${base}/files/b`, join(dir, 'b.mp3'), {})).rejects.toMatchObject({
      code: 'NETWORK_ERROR',
    });
    expect((await readdir(dir)).filter((f) => f.includes('b.mp3'))).toEqual([]);
  });

  it('leave an existing file alone and fail with BAD_USER_INPUT naming it, unless overwrite is set', async () => {
    const sub = await mkdtemp(join(dir, 'existing-'));
    const target = join(sub, 'talk.mp3');
    await writeFile(target, 'mine');
    handler = (_req, res) => res.end('downloaded');
    await expect(nodePlatform.downloadToFile!(`${base}/files/talk`, target, {})).rejects.toMatchObject({
      name: 'Vidmp3Error',
      code: 'BAD_USER_INPUT',
      message: `Cannot write ${target}: the file already exists (pass overwrite: true to replace it)`,
    });
    expect(await readFile(target, 'utf8')).toBe('mine');
    expect(await readdir(sub)).toEqual(['talk.mp3']); // no temporary file left

    const replaced = await nodePlatform.downloadToFile!(`${base}/files/talk`, target, { overwrite: true });
    expect(replaced).toEqual({ path: target, bytes: 10 });
    expect(await readFile(target, 'utf8')).toBe('downloaded');
    expect(await readdir(sub)).toEqual(['talk.mp3']);

    const fresh = await nodePlatform.downloadToFile!(`${base}/files/talk`, join(sub, 'new.mp3'), {});
    expect(await readFile(fresh.path, 'utf8')).toBe('downloaded');
    expect((await readdir(sub)).sort()).toEqual(['new.mp3', 'talk.mp3']); // one name each, no temporary file
  });

  it('report an expired link as UNAUTHENTICATED with the server message, and a missing folder as BAD_USER_INPUT', async () => {
    handler = (_req, res) => {
      res.statusCode = 403;
      res.setHeader('content-type', 'application/json');
      res.end('{"error":"LINK_EXPIRED","message":"This download link has expired; ask for a new one"}');
    };
    await expect(nodePlatform.downloadToFile!(`${base}/files/c`, join(dir, 'c.mp3'), {})).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
      status: 403,
      message: 'This download link has expired; ask for a new one',
    });
    handler = (_req, res) => res.end('x');
    await expect(nodePlatform.downloadToFile!(`${base}/files/d`, join(dir, 'no', 'd.mp3'), {})).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      message: `Cannot write ${join(dir, 'no', 'd.mp3')}: no such file or directory`,
    });
  });
});
