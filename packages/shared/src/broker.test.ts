import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  connectBroker,
  declareTopology,
  Delivery,
  publishConfirmed,
  superviseChannel,
  UnroutableError,
  type ChannelWrapper,
  type ConfirmChannel,
} from './broker.js';
import { createLogger } from './logger.js';
import { Topology } from './messaging.js';
import type { AmqpConnectionManager } from 'amqp-connection-manager';
import amqplib from 'amqplib';

// Against the real RabbitMQ, in a virtual host of this file's own.
const rabbitmqctl = promisify(execFile);
const SERVER = process.env.E2E_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const vhost = `vidmp3_broker_test_${randomBytes(4).toString('hex')}`;

let connection: AmqpConnectionManager;
let channel: ChannelWrapper;

beforeAll(async () => {
  await rabbitmqctl('rabbitmqctl', ['-q', 'add_vhost', vhost]);
  await rabbitmqctl('rabbitmqctl', ['-q', 'set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);
  connection = connectBroker(`${SERVER}/${vhost}`, createLogger('test', 'silent'));
  channel = connection.createChannel({ confirm: true, setup: declareTopology });
  await channel.waitForConnect();
});

afterAll(async () => {
  await channel?.close();
  await connection?.close();
  await rabbitmqctl('rabbitmqctl', ['-q', 'delete_vhost', vhost]).catch(() => undefined);
});

describe('publishConfirmed', () => {
  it('resolves once a message is stored in its queue', async () => {
    await publishConfirmed(channel, Topology.eventsExchange, Topology.eventsQueue, Buffer.from('{}'));
    expect((await channel.checkQueue(Topology.eventsQueue)).messageCount).toBe(1);
  });

  it('fails a message no queue takes, instead of letting RabbitMQ drop it silently', async () => {
    const publish = publishConfirmed(channel, Topology.conversionsExchange, 'no-such-queue', Buffer.from('{}'));
    await expect(publish).rejects.toBeInstanceOf(UnroutableError);
    // The channel is still usable afterwards.
    await publishConfirmed(channel, Topology.eventsExchange, Topology.eventsQueue, Buffer.from('{}'));
  });

  it('lets a broadcast that nobody listens to right now succeed', async () => {
    await expect(
      publishConfirmed(channel, Topology.controlExchange, '', Buffer.from('{"type":"cancel","jobId":"j"}')),
    ).resolves.toBeUndefined();
  });
});

describe('superviseChannel', () => {
  const logger = createLogger('test', 'silent');

  it('survives a setup the broker refuses (not ready meanwhile) and recovers by itself once the cause is gone', async () => {
    const queue = `conflict-${randomBytes(4).toString('hex')}`;
    // Declared and deleted over a connection of the test's own (the supervised channel's retries re-establish
    // the shared one). The queue exists with other arguments than the setup declares: RabbitMQ answers 406.
    const admin = await amqplib.connect(`${SERVER}/${vhost}`);
    const adminChannel = await admin.createChannel();
    await adminChannel.assertQueue(queue, { durable: true, arguments: { 'x-max-length': 10 } });
    const supervised = superviseChannel(
      connection,
      {
        name: 'conflicting',
        setup: (ch) => ch.assertQueue(queue, { durable: true, arguments: { 'x-max-length': 20 } }),
      },
      logger,
    );
    try {
      // No listener of the test's own: without the supervisor's, the wrapper's 'error' would end the process.
      await vi.waitFor(() => expect(supervised.lastError()).toBeDefined(), { timeout: 10_000 });
      expect(supervised.ready()).toBe(false);
      expect(String((supervised.lastError() as Error).message)).toMatch(/PRECONDITION_FAILED/);

      await adminChannel.deleteQueue(queue);
      await vi.waitFor(() => expect(supervised.ready()).toBe(true), { timeout: 20_000, interval: 100 });
    } finally {
      await supervised.close();
      await admin.close();
    }
  });

  it('reopens a channel the broker closed on its own, with its consumer, while the connection stays up', async () => {
    const queue = `consumed-${randomBytes(4).toString('hex')}`;
    const received: string[] = [];
    let raw: ConfirmChannel | undefined;
    const supervised = superviseChannel(
      connection,
      {
        name: 'consumer',
        setup: async (ch) => {
          raw = ch;
          await ch.assertQueue(queue, { durable: true });
          await ch.consume(queue, (msg) => {
            if (!msg) return;
            received.push(msg.content.toString());
            ch.ack(msg);
          });
        },
      },
      logger,
    );
    try {
      await vi.waitFor(() => expect(supervised.ready()).toBe(true), { timeout: 10_000 });
      const closed = raw!;
      // A channel-level error: RabbitMQ closes this channel (404) and only it.
      await closed.checkQueue(`missing-${randomBytes(4).toString('hex')}`).catch(() => undefined);
      await vi.waitFor(() => expect(supervised.ready()).toBe(false), { timeout: 5_000, interval: 10 });

      await vi.waitFor(() => expect(supervised.ready()).toBe(true), { timeout: 20_000, interval: 100 });
      expect(raw).not.toBe(closed);
      await publishConfirmed(channel, '', queue, Buffer.from('after'));
      await vi.waitFor(() => expect(received).toContain('after'), { timeout: 10_000 });
    } finally {
      await supervised.close();
      await channel.deleteQueue(queue).catch(() => undefined);
    }
  });
});

describe('Delivery', () => {
  const log = createLogger('test', 'silent');

  /** A raw amqplib channel holding one unsettled message from a queue of its own. */
  async function holdOne() {
    const conn = await amqplib.connect(`${SERVER}/${vhost}`);
    const ch = await conn.createConfirmChannel();
    const { queue } = await ch.assertQueue('', { exclusive: false, autoDelete: false });
    ch.sendToQueue(queue, Buffer.from('work'));
    await ch.waitForConfirms();
    const msg = await ch.get(queue, { noAck: false });
    if (!msg) throw new Error('the message did not arrive');
    return { conn, ch, queue, delivery: new Delivery(msg, ch) };
  }

  it('is settled once: settling again does nothing (a second ack would close the channel)', async () => {
    const { conn, ch, queue, delivery } = await holdOne();
    expect(delivery.settle('ack', log)).toBe(true);
    expect(delivery.settle('requeue', log)).toBe(false);
    expect(delivery.isSettled).toBe(true);
    // Frames on one channel are handled in order: a refused second ack would have closed it before this answers.
    expect((await ch.checkQueue(queue)).messageCount).toBe(0);
    await ch.deleteQueue(queue);
    await conn.close();
  });

  it('tolerates the channel it came on having closed: RabbitMQ hands the message out again', async () => {
    const { conn, ch, queue, delivery } = await holdOne();
    await ch.close();
    expect(delivery.settle('ack', log)).toBe(false);
    const again = await conn.createChannel();
    const redelivered = await again.get(queue, { noAck: true });
    expect(redelivered && redelivered.fields.redelivered).toBe(true);
    await again.deleteQueue(queue);
    await conn.close();
  });
});
