import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBroker, declareTopology, publishConfirmed, UnroutableError, type ChannelWrapper } from './broker.js';
import { createLogger } from './logger.js';
import { Topology } from './messaging.js';
import type { AmqpConnectionManager } from 'amqp-connection-manager';

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
