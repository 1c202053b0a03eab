import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  connectBroker,
  ConversionRequest,
  createLogger,
  createMetrics,
  declareTopology,
  openDatabase,
  OutboxRelay,
  startOutboxPublisher,
  Topology,
  type AmqpConnectionManager,
  type ChannelWrapper,
  type ConfirmChannel,
  type OutboxPublisher,
  type Pool,
  withTransaction,
} from '@vidmp3/shared';
import { JobsRepository } from '../src/adapters/jobs-repo.js';
import { migrations } from '../src/migrations.js';

const run = promisify(execFile);

const SERVER = 'mysql://root@127.0.0.1:3306';
const DATABASE = `vidmp3_jobs_test_${randomBytes(6).toString('hex')}`;
const DATABASE_URL = `${SERVER}/${DATABASE}`;
// Other suites and the dev stack use the default vhost with the same queue names: this file has its own.
const VHOST = `vidmp3_jobs_relay_test_${randomBytes(6).toString('hex')}`;
const brokerUrl = (port = 5672) => `amqp://guest:guest@127.0.0.1:${port}/${VHOST}`;
/** How long publishConfirmed waits for a confirm before the relay gives up on a flush. */
const PUBLISH_TIMEOUT_MS = 10_000;

const logger = createLogger('test', 'silent');

const pools: Pool[] = [];
const brokers: AmqpConnectionManager[] = [];
const channels: ChannelWrapper[] = [];
const relays: OutboxRelay[] = [];
const publishers: OutboxPublisher[] = [];
const servers: Server[] = [];
let pool: Pool;

beforeAll(async () => {
  await run('rabbitmqctl', ['-q', 'add_vhost', VHOST]);
  await run('rabbitmqctl', ['-q', 'set_permissions', '-p', VHOST, 'guest', '.*', '.*', '.*']);
  pool = await database();
});

// Whatever a test started is closed after it: a relay left running would publish the next test's rows, and a
// consumer left open would take its messages.
afterEach(async () => {
  for (const relay of relays.splice(0)) await relay.stop();
  for (const outbox of publishers.splice(0)) await outbox.close();
  for (const channel of channels.splice(0)) await channel.close().catch(() => undefined);
  for (const broker of brokers.splice(0)) await broker.close().catch(() => undefined);
  for (const server of servers.splice(0)) await closeServer(server);
  // Rows a test left unpublished on purpose are not the next test's to receive.
  await pool.query('DELETE FROM outbox WHERE published_at IS NULL');
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  const conn = await mysql.createConnection(SERVER);
  await conn.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
  await conn.end();
  await run('rabbitmqctl', ['-q', 'delete_vhost', VHOST]);
});

// ---- factories

/** A pool of its own on this file's database, as each jobs replica has. */
async function database(): Promise<Pool> {
  const created = await openDatabase({ url: DATABASE_URL, migrations, logger, connectionLimit: 4 });
  pools.push(created);
  return created;
}

/** A publishing channel as jobs opens it: confirms on, the shared topology declared on every (re)connection. */
function publisher(url = brokerUrl()): ChannelWrapper {
  const broker = connectBroker(url, logger);
  brokers.push(broker);
  const channel = broker.createChannel({ confirm: true, setup: (ch: ConfirmChannel) => declareTopology(ch) });
  channels.push(channel);
  return channel;
}

/** A jobs replica's relay: its own database pool and its own broker connection. */
async function replica(options: { url?: string } = {}) {
  // What the relay logs when a flush fails and will be tried again.
  const warn = vi.fn();
  const relayLogger = createLogger('test', 'silent');
  relayLogger.warn = warn;
  const relay = new OutboxRelay(await database(), publisher(options.url), relayLogger, { intervalMs: 50 });
  relays.push(relay);
  return { relay, warn };
}

/** A conversion request as jobs would write it, for a job nobody else in this run has. */
const request = (): ConversionRequest => ({
  jobId: randomUUID(),
  attempt: 1,
  ownerId: randomUUID(),
  inputMediaId: randomUUID(),
  inputDurationSeconds: 12.5,
  options: { bitrateKbps: 192, sampleRateHz: null, channels: null, startSeconds: null, endSeconds: null },
});

/** Writes a conversion request to the outbox in a transaction of its own, as convertMedia does. */
async function writeRequest(repo = new JobsRepository(pool)): Promise<string> {
  const r = request();
  await withTransaction(pool, (conn) =>
    repo.addOutbox(conn, Topology.conversionsExchange, Topology.conversionsQueue, r),
  );
  return r.jobId;
}

async function writeRequests(count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await writeRequest());
  return ids;
}

/** Collects the job ids of every conversion request delivered on this file's vhost, acking each. */
async function consumeRequests() {
  const received: string[] = [];
  const broker = connectBroker(brokerUrl(), logger);
  brokers.push(broker);
  const channel = broker.createChannel({ confirm: true, setup: (ch: ConfirmChannel) => declareTopology(ch) });
  channels.push(channel);
  await channel.waitForConnect();
  await channel.consume(Topology.conversionsQueue, (msg) => {
    received.push(ConversionRequest.parse(JSON.parse(msg.content.toString('utf8'))).jobId);
    channel.ack(msg);
  });
  return received;
}

async function unpublished(jobIds: string[]): Promise<string[]> {
  const [rows] = await pool.query<RowDataPacket[]>(
    `SELECT JSON_VALUE(payload, '$.jobId') AS jobId FROM outbox WHERE published_at IS NULL
     AND JSON_VALUE(payload, '$.jobId') IN (?)`,
    [jobIds],
  );
  return rows.map((r) => String(r.jobId));
}

/** Whether another transaction holds the lock on the job's outbox row (a NOWAIT probe: no waiting). */
async function isLocked(jobId: string): Promise<boolean> {
  const conn = await pool.getConnection();
  try {
    await conn.beginTransaction();
    await conn.query(`SELECT id FROM outbox WHERE JSON_VALUE(payload, '$.jobId') = ? FOR UPDATE NOWAIT`, [jobId]);
    return false;
  } catch (err) {
    // ER_LOCK_WAIT_TIMEOUT: MariaDB's answer to NOWAIT on a locked row.
    if ((err as { errno?: number }).errno === 1205) return true;
    throw err;
  } finally {
    await conn.rollback();
    conn.release();
  }
}

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

const sorted = (ids: string[]) => [...ids].sort();

/** A TCP port nothing listens on (yet). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await closeServer(probe);
  return port;
}

const openSockets = new WeakMap<Server, Set<Socket>>();

/** Makes RabbitMQ reachable on `port`: every connection there is forwarded to the real broker. */
async function forwardToBroker(port: number): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(5672, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  openSockets.set(server, sockets);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

/** Stops listening and cuts the connections still open (close alone would wait for them). */
function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  openSockets.get(server)?.forEach((s) => s.destroy());
  return closed;
}

// ---- specifications

describe('OutboxRelay', () => {
  it('publishes every row exactly once while two relays share the outbox, and marks each published', async () => {
    const received = await consumeRequests();
    const a = await replica();
    const b = await replica();
    const all = await writeRequests(250);

    a.relay.start();
    b.relay.start();
    for (let i = 0; i < 50; i++) {
      a.relay.kick();
      b.relay.kick();
      await sleep(5);
    }

    await eventually(async () => (await unpublished(all)).length === 0, 20_000, 'every row is published');
    await eventually(() => received.length >= all.length, 10_000, 'every message has arrived');
    // Time for any duplicate still in flight to arrive.
    await sleep(1_000);
    expect([...a.warn.mock.calls, ...b.warn.mock.calls]).toEqual([]);
    expect(received).toHaveLength(all.length);
    expect(sorted(received)).toEqual(sorted(all));
  });

  it('never fails a writer while two relays flush, and publishes what it wrote exactly once', async () => {
    const received = await consumeRequests();
    const a = await replica();
    const b = await replica();
    a.relay.start();
    b.relay.start();

    // Four writers at once, each commit kicking both relays as a JobsService mutation does.
    const writers = await Promise.allSettled(
      [1, 2, 3, 4].map(async () => {
        const ids: string[] = [];
        for (let i = 0; i < 40; i++) {
          ids.push(await writeRequest());
          a.relay.kick();
          b.relay.kick();
        }
        return ids;
      }),
    );

    const refused = writers.flatMap((w) => (w.status === 'rejected' ? [String(w.reason)] : []));
    expect(refused).toEqual([]);
    const all = writers.flatMap((w) => (w.status === 'fulfilled' ? w.value : []));
    await eventually(async () => (await unpublished(all)).length === 0, 20_000, 'every row is published');
    await eventually(() => received.length >= all.length, 10_000, 'every message has arrived');
    await sleep(1_000);
    expect(sorted(received)).toEqual(sorted(all));
  });

  it('does not hold writers up while it waits for RabbitMQ', { timeout: 30_000 }, async () => {
    const { relay, warn } = await replica({ url: brokerUrl(await freePort()) });
    const taken = await writeRequest();
    relay.start();
    // The relay has taken the row (it holds its lock) and now waits for a broker that does not answer.
    await eventually(() => isLocked(taken), 10_000, 'the relay to lock the row it publishes');

    // A writer gets through meanwhile: its row commits while the relay still holds the first one.
    const written = await writeRequest();
    expect(await isLocked(taken)).toBe(true);
    expect(await unpublished([written])).toEqual([written]);
    expect(warn).not.toHaveBeenCalled();
  });

  it(
    'keeps rows unpublished while RabbitMQ is unreachable, and publishes them once it is back',
    { timeout: 60_000 },
    async () => {
      const received = await consumeRequests();
      const port = await freePort();
      const { relay, warn } = await replica({ url: brokerUrl(port) });
      const jobIds = await writeRequests(3);

      relay.start();
      await eventually(() => warn.mock.calls.length > 0, PUBLISH_TIMEOUT_MS + 5_000, 'the relay gives up a flush');

      expect(warn.mock.calls[0]?.[1]).toBe('outbox relay: will retry');
      expect(sorted(await unpublished(jobIds))).toEqual(sorted(jobIds));
      expect(received).toEqual([]);

      await forwardToBroker(port);

      await eventually(async () => (await unpublished(jobIds)).length === 0, 15_000, 'the rows are published');
      await eventually(() => received.length >= jobIds.length, 10_000, 'the messages have arrived');
      await sleep(1_000);
      await relay.stop();
      expect(sorted(received)).toEqual(sorted(jobIds));
    },
  );

  it(
    'recovers from a channel error: rows for an exchange that does not exist yet wait, then go out once it does',
    { timeout: 60_000 },
    async () => {
      const exchange = `vidmp3.test.late-${randomBytes(4).toString('hex')}`;
      const queue = `${exchange}.queue`;
      const { relay, warn } = await replica();
      const repo = new JobsRepository(pool);
      const early = request();
      await repo.addOutbox(pool, exchange, queue, early);

      relay.start();
      await eventually(() => warn.mock.calls.length > 0, PUBLISH_TIMEOUT_MS + 5_000, 'the relay gives up a flush');
      expect(String((warn.mock.calls[0]?.[0] as { err?: unknown }).err)).toMatch(/channel closed|NOT_FOUND/i);
      expect(await unpublished([early.jobId])).toEqual([early.jobId]);

      // The exchange appears (another service declared it): the waiting row must go out now.
      const received: string[] = [];
      const admin = connectBroker(brokerUrl(), logger);
      brokers.push(admin);
      const consumer = admin.createChannel({
        confirm: true,
        setup: async (ch: ConfirmChannel) => {
          await ch.assertExchange(exchange, 'direct', { durable: false, autoDelete: true });
          await ch.assertQueue(queue, { durable: false, exclusive: true });
          await ch.bindQueue(queue, exchange, queue);
          await ch.consume(queue, (msg) => {
            if (!msg) return;
            received.push(ConversionRequest.parse(JSON.parse(msg.content.toString('utf8'))).jobId);
            ch.ack(msg);
          });
        },
      });
      channels.push(consumer);
      await consumer.waitForConnect();

      await eventually(
        async () => (await unpublished([early.jobId])).length === 0,
        PUBLISH_TIMEOUT_MS * 2 + 5_000,
        'the waiting row is published',
      );
      await eventually(() => received.length >= 1, 5_000, 'the message has arrived');
      // The relay's channel works again for everything else too.
      const later = await writeRequest();
      await eventually(async () => (await unpublished([later])).length === 0, 5_000, 'a later row is published');
      await relay.stop();
      expect(received).toEqual([early.jobId]);
    },
  );
});

describe('startOutboxPublisher (direct publishing)', () => {
  /** A service's outbox publisher as app.ts starts it, on a pool of its own. */
  async function service(url = brokerUrl()) {
    const own = await database();
    const broker = connectBroker(url, logger);
    brokers.push(broker);
    const outbox = startOutboxPublisher(broker, own, logger, createMetrics('test'), 'test-publisher');
    publishers.push(outbox);
    return { pool: own, outbox };
  }

  /** Writes requests in one transaction, through the publisher as the services do. */
  async function writeTogether(on: Pool, outbox: OutboxPublisher, count: number): Promise<string[]> {
    const requests = Array.from({ length: count }, request);
    await withTransaction(on, async (conn) => {
      for (const r of requests) await outbox.add(conn, Topology.conversionsExchange, Topology.conversionsQueue, r);
    });
    return requests.map((r) => r.jobId);
  }

  it('publishes what a transaction wrote as it commits, in order, in one statement, and marks it published', async () => {
    const received = await consumeRequests();
    const { pool: own, outbox } = await service();
    await eventually(() => outbox.ready(), 10_000, 'the publishing channel is open');

    const jobIds = await writeTogether(own, outbox, 5);

    // The relay's own runs take only rows older than its grace (15 s): arriving sooner means at the commit.
    // (An earlier test's message may still be in the queue: only this test's are compared.)
    const ours = () => received.filter((id) => jobIds.includes(id));
    await eventually(() => ours().length >= 5, 5_000, 'the messages have arrived');
    expect(ours()).toEqual(jobIds);
    await eventually(async () => (await unpublished(jobIds)).length === 0, 5_000, 'the rows are marked published');
    const [rows] = await pool.query<RowDataPacket[]>(
      `SELECT id, created_at FROM outbox WHERE JSON_VALUE(payload, '$.jobId') IN (?) ORDER BY id`,
      [jobIds],
    );
    // One multi-row INSERT: consecutive ids, one timestamp.
    expect(rows.map((r) => Number(r.id) - Number(rows[0]!.id))).toEqual([0, 1, 2, 3, 4]);
    expect(new Set(rows.map((r) => (r.created_at as Date).getTime())).size).toBe(1);
  });

  it('never writes nor publishes what a transaction rolled back', async () => {
    const received = await consumeRequests();
    const { pool: own, outbox } = await service();
    await eventually(() => outbox.ready(), 10_000, 'the publishing channel is open');
    const dropped = request();

    await expect(
      withTransaction(own, async (conn) => {
        await outbox.add(conn, Topology.conversionsExchange, Topology.conversionsQueue, dropped);
        throw new Error('the work failed after it wrote its message');
      }),
    ).rejects.toThrow('the work failed');
    // A later commit's message arrives alone: one channel keeps the order, so the dropped one is not on its way.
    const [kept] = await writeTogether(own, outbox, 1);

    const ours = () => received.filter((id) => id === kept || id === dropped.jobId);
    await eventually(() => ours().length >= 1, 5_000, 'the committed message has arrived');
    expect(ours()).toEqual([kept]);
    const [rows] = await pool.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM outbox WHERE JSON_VALUE(payload, '$.jobId') = ?`,
      [dropped.jobId],
    );
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it(
    'leaves what it could not publish to the relay: written while RabbitMQ is away, published once it is back',
    { timeout: 60_000 },
    async () => {
      const received = await consumeRequests();
      const port = await freePort();
      const { pool: own, outbox } = await service(brokerUrl(port));
      const jobIds = await writeTogether(own, outbox, 3);
      expect(sorted(await unpublished(jobIds))).toEqual(sorted(jobIds));

      await forwardToBroker(port);

      // Well within the relay's grace: the rows went to the relay at the commit, not at its next own run.
      await eventually(async () => (await unpublished(jobIds)).length === 0, 12_000, 'the rows are published');
      const ours = () => received.filter((id) => jobIds.includes(id));
      await eventually(() => ours().length >= jobIds.length, 5_000, 'the messages have arrived');
      expect(sorted(ours())).toEqual(sorted(jobIds));
    },
  );

  it('leaves rows younger than the grace to their writer on its own runs, and takes them once older', async () => {
    const received = await consumeRequests();
    const relay = new OutboxRelay(await database(), publisher(), logger, { intervalMs: 50, graceMs: 1_500 });
    relays.push(relay);
    // Committed by a process that stopped before publishing it (no publisher for this pool).
    const orphan = await writeRequest();
    relay.start();

    await sleep(500);
    expect(await unpublished([orphan])).toEqual([orphan]);
    await eventually(() => received.includes(orphan), 10_000, 'the relay publishes the orphaned row');
  });
});
