// Media started with MONGODB_URL set, where no MongoDB answers: the whole start-up path (environment → config →
// app wiring → the lazily loaded GridFS adapter → the driver) runs up to the point where it needs the server.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MongoServerSelectionError } from 'mongodb';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, DependencyError, parseConfig } from '@vidmp3/shared';
import { startMedia } from '../src/app.js';
import { ConfigSchema } from '../src/config.js';

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_media_gridfs_start_${randomBytes(6).toString('hex')}`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-media-start-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
});

/** A port on loopback where nothing listens (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Connections MariaDB holds open to the test's database now. */
async function connectionsToDatabase(): Promise<number> {
  const conn = await mysql.createConnection(SERVER);
  try {
    const [rows] = await conn.query<RowDataPacket[]>(
      'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
      [DATABASE],
    );
    return Number(rows[0]!.n);
  } finally {
    await conn.end();
  }
}

describe('media starting with its blobs on GridFS', () => {
  it('stops with one clear error naming MongoDB when no server answers, and leaves no connection open', async () => {
    const port = await closedPort();
    const config = parseConfig(ConfigSchema, {
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      PORT: '0',
      MYSQL_URL: `${SERVER}/${DATABASE}`,
      MONGODB_URL: `mongodb://vidmp3_media:s3cret-pw@127.0.0.1:${port}/vidmp3_media?serverSelectionTimeoutMS=300`,
      DOWNLOAD_KEY_FILE: join(dir, 'download.key'),
      SCRATCH_DIR: join(dir, 'scratch'),
    });

    const failure = await startMedia(config, createLogger('media', 'silent')).then(
      async (server) => {
        await server.close();
        return new Error('media started');
      },
      (err: unknown) => err,
    );

    // Not a TypeError from the wiring, nor the driver's error with its stack: what runService prints in one line.
    expect(failure).toBeInstanceOf(DependencyError);
    expect((failure as DependencyError).message).toBe(`cannot reach MongoDB at mongodb://127.0.0.1:${port}`);
    expect((failure as DependencyError).cause).toBeInstanceOf(MongoServerSelectionError);
    // The database it had opened first is closed again.
    await expect.poll(connectionsToDatabase, { timeout: 10_000 }).toBe(0);
  });
});
