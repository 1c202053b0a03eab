// Media's GridFS path, run where no MongoDB server is: the configuration, the store's wiring over the real driver
// (network stubbed at the collection calls), and the start-up's failure when no server answers. The contract
// suite (blob-store.test.ts) covers the store's behaviour against a real server where MONGODB_URL is set.
import { randomFillSync, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { Readable } from 'node:stream';
import { Collection, MongoClient, MongoServerSelectionError, type Document } from 'mongodb';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, DependencyError, parseConfig } from '@vidmp3/shared';
import { GridFsBlobStore, mongoAddress } from '../src/adapters/blob-gridfs.js';
import { ConfigSchema } from '../src/config.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** The problems a ConfigError lists, or a failure when the config was accepted. */
function problemsOf(env: Record<string, string>): string[] {
  try {
    parseConfig(ConfigSchema, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error(`accepted: ${JSON.stringify(env)}`);
}

describe('MONGODB_URL', () => {
  it('unset or empty, keeps the blobs on local disk', () => {
    expect(parseConfig(ConfigSchema, {}).MONGODB_URL).toBeUndefined();
    expect(parseConfig(ConfigSchema, { MONGODB_URL: '' }).MONGODB_URL).toBeUndefined();
  });

  it.each([
    'mongodb://127.0.0.1:27017/vidmp3_media',
    'mongodb://vidmp3_media:p%40ss@mongo.internal:27017/vidmp3_media?authSource=admin',
    // A replica set: several hosts with their ports, which no WHATWG URL parser accepts.
    'mongodb://vidmp3:pw@mongo-0.mongo:27017,mongo-1.mongo:27017,mongo-2.mongo:27017/vidmp3_media?replicaSet=rs0',
    'mongodb+srv://vidmp3:pw@cluster0.example.net/vidmp3_media?retryWrites=true',
  ])('takes the connection string %s as it is', (url) => {
    expect(parseConfig(ConfigSchema, { MONGODB_URL: url }).MONGODB_URL).toBe(url);
  });

  it.each([
    ['no scheme', 'localhost:27017'],
    ['another scheme', 'http://vidmp3:s3cret-pw@mongo:27017/vidmp3_media'],
    ['a misspelt scheme', 'mongo://mongo:27017/vidmp3_media'],
    ['no host', 'mongodb:///vidmp3_media'],
    ['nothing after the scheme', 'mongodb://'],
  ])('refuses %s at start, naming the setting and not echoing the value', (_, url) => {
    const problems = problemsOf({ MONGODB_URL: url });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^MONGODB_URL: .*mongodb:\/\//);
    expect(problems[0]).not.toContain('s3cret');
  });
});

/** What the store asked of MongoDB: one entry per collection call, with the collection's namespace. */
interface Call {
  op: string;
  ns: string;
  args: unknown[];
}

/**
 * A GridFS store over the real driver whose network is stubbed: `connect` does nothing, and the collection
 * calls the store and the driver's GridFS code make are recorded and answered as an empty bucket would.
 */
async function storeWithoutAServer(url: string, bucket: string): Promise<{ store: GridFsBlobStore; calls: Call[] }> {
  const calls: Call[] = [];
  vi.spyOn(MongoClient.prototype, 'connect').mockImplementation(async function (this: MongoClient) {
    return this;
  });
  const record = <R>(op: string, answer: (...args: unknown[]) => R) =>
    function (this: Collection, ...args: unknown[]): Promise<R> {
      calls.push({ op, ns: this.namespace, args });
      return Promise.resolve(answer(...args));
    };
  const stub = (op: keyof Collection, impl: (this: Collection, ...args: unknown[]) => Promise<unknown>) =>
    vi.spyOn(Collection.prototype, op as 'insertOne').mockImplementation(impl as never);
  stub(
    'createIndex',
    record('createIndex', () => 'index'),
  );
  stub(
    'countDocuments',
    record('countDocuments', () => 0),
  );
  // The driver's upload first looks for any file (none would make it list the indexes): say there is one.
  stub(
    'findOne',
    record('findOne', (filter) => ((filter as Document)._id === undefined ? { _id: 'an-older-file' } : null)),
  );
  stub(
    'insertOne',
    record('insertOne', (doc) => ({ acknowledged: true, insertedId: (doc as Document)._id as unknown })),
  );
  stub(
    'deleteOne',
    record('deleteOne', () => ({ acknowledged: true, deletedCount: 0 })),
  );
  stub(
    'deleteMany',
    record('deleteMany', () => ({ acknowledged: true, deletedCount: 0 })),
  );
  return { store: await GridFsBlobStore.connect(url, bucket), calls };
}

describe('the GridFS store, wired over the real driver without a server', () => {
  it('creates the indexes the store relies on, in the database the URL names', async () => {
    const { store, calls } = await storeWithoutAServer('mongodb://vidmp3:pw@127.0.0.1:1/media_store', 'bucket_x');
    expect(calls.map(({ ns, args }) => [ns, ...args])).toEqual([
      ['media_store.bucket_x.files', { filename: 1, uploadDate: 1 }],
      // Unique: two chunks can never claim one position of a file.
      ['media_store.bucket_x.chunks', { files_id: 1, n: 1 }, { unique: true }],
      // A put whose process died frees its key after a day.
      ['media_store.bucket_x.reservations', { startedAt: 1 }, { expireAfterSeconds: 24 * 60 * 60 }],
    ]);
    await store.close();
  });

  it("writes through the driver's GridFS into the very collections it reads, fences and cleans up", async () => {
    const { store, calls } = await storeWithoutAServer('mongodb://127.0.0.1:1/media_store', 'bucket_x');
    calls.length = 0;
    const key = randomUUID();
    const size = 300 * 1024; // two GridFS chunks of 255 KiB at most

    expect(await store.put(key, Readable.from([randomFillSync(Buffer.alloc(size))]))).toEqual({ byteSize: size });

    const inserted = (ns: string) =>
      calls.filter((c) => c.op === 'insertOne' && c.ns === `media_store.bucket_x.${ns}`).map((c) => c.args[0]);
    // Written by the driver's GridFS upload stream, under the bucket the store was given.
    const chunks = inserted('chunks') as { files_id: unknown; n: number; data: Uint8Array }[];
    expect(chunks.map((c) => [c.files_id, c.n])).toEqual([
      [key, 0],
      [key, 1],
    ]);
    expect(chunks.reduce((sum, c) => sum + c.data.length, 0)).toBe(size);
    expect(inserted('files')).toEqual([expect.objectContaining({ _id: key, filename: key, length: size })]);
    // The key was fenced while the bytes were written, and the fence was lifted afterwards.
    expect(inserted('reservations')).toEqual([expect.objectContaining({ _id: key })]);
    expect(calls.filter((c) => c.op === 'deleteOne').map((c) => [c.ns, c.args[0]])).toEqual([
      ['media_store.bucket_x.reservations', { _id: key }],
    ]);
    // Nothing anywhere else: not GridFS's default bucket (fs), not another database.
    expect(new Set(calls.map((c) => c.ns))).toEqual(
      new Set(['files', 'chunks', 'reservations'].map((c) => `media_store.bucket_x.${c}`)),
    );
    await store.close();
  });

  // The bound only catches a hang: the driver's own server selection would wait 30 s.
  it('reports not ready, quickly, once the server is gone', { timeout: 15_000 }, async () => {
    const { store } = await storeWithoutAServer(`mongodb://127.0.0.1:${await closedPort()}/media_store`, 'b');
    vi.restoreAllMocks(); // from here on the driver really connects, to a port where nothing listens
    expect(await store.ping()).toBe(false);
    await store.close();
  });
});

/** A port on loopback where nothing listens (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP server on loopback that hangs up on every connection at once: something, but not MongoDB. */
async function hangingUp(): Promise<{ port: number; server: Server }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

describe('connecting at start', () => {
  it.each([
    ['nothing listens', async () => ({ port: await closedPort(), close: async () => undefined })],
    [
      'a server hangs up at once',
      async () => {
        const { port, server } = await hangingUp();
        return { port, close: () => new Promise((resolve) => server.close(resolve)) };
      },
    ],
  ])('names MongoDB and its address in one line when %s, without the password', async (_, listen) => {
    const { port, close } = await listen();
    try {
      const url = `mongodb://vidmp3:s3cret-pw@127.0.0.1:${port}/vidmp3_media?serverSelectionTimeoutMS=300`;
      const failure = await GridFsBlobStore.connect(url).then(
        () => new Error('connected'),
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(DependencyError);
      expect((failure as DependencyError).message).toBe(`cannot reach MongoDB at mongodb://127.0.0.1:${port}`);
      expect((failure as DependencyError).cause).toBeInstanceOf(MongoServerSelectionError);
    } finally {
      await close();
    }
  });

  it('shows the hosts of a connection string, never its credentials, database or options', () => {
    expect(mongoAddress('mongodb://u:s3cret@a.example:27017,b.example:27017/db?replicaSet=rs0')).toBe(
      'mongodb://a.example:27017,b.example:27017',
    );
    expect(mongoAddress('mongodb+srv://u:s3cret@cluster0.example.net/db')).toBe('mongodb+srv://cluster0.example.net');
    expect(mongoAddress('mongodb://127.0.0.1')).toBe('mongodb://127.0.0.1');
  });
});
