import type { ConsumeMessage } from 'amqplib';
import {
  ConversionRequest,
  decodeMessage,
  declareTopology,
  Delivery,
  JobChanged,
  JobEvent,
  messageRequestId,
  Topology,
  type AmqpConnectionManager,
  superviseChannel,
  type SupervisedChannel,
  type ConfirmChannel,
  type Logger,
  type Metrics,
} from '@vidmp3/shared';
import type { ChangeBus } from '../services/change-bus.js';
import type { JobsService } from '../services/jobs.js';

const RETRY_AFTER_FAILURE_MS = 1_000;

/**
 * What jobs consumes, set up again after every reconnection:
 * - `job-events` (shared by all replicas): workers' events, applied to the database once;
 * - the dead-letter queue: requests RabbitMQ gave up on (delivery limit), whose jobs are failed, and requests
 *   converters gave up on, whose jobs their own `failed` event has failed already;
 * - an exclusive queue on the `job-changes` fanout: every change, pushed to this replica's subscribers.
 */
export function startConsumers(
  connection: AmqpConnectionManager,
  jobs: JobsService,
  bus: ChangeBus,
  logger: Logger,
  metrics?: Metrics,
): SupervisedChannel {
  const applied = metrics?.counter({
    name: 'vidmp3_job_events_total',
    help: 'Worker events this replica consumed, by type (stale and duplicate ones included)',
    labelNames: ['type'],
  });
  // Settled once, on the channel it came on, and not at all once that channel closed (Delivery, broker.ts).
  // A database hiccup must not drop an event: wait a moment, then hand it back (no hot requeue loop).
  // A message that is not even JSON, or not of the contract, will never apply: it is logged and dropped.
  const settle = (ch: ConfirmChannel, msg: ConsumeMessage, work: Promise<void>, what: string, log: Logger) => {
    const delivery = new Delivery(msg, ch);
    work.then(
      () => delivery.settle('ack', log),
      (err: unknown) => {
        if (err instanceof Error && (err.name === 'ZodError' || err instanceof SyntaxError)) {
          log.error({ err, what }, 'dropping a malformed message');
          delivery.settle('ack', log);
          return;
        }
        log.warn({ err, what }, 'could not apply a message; will retry');
        setTimeout(() => delivery.settle('requeue', log), RETRY_AFTER_FAILURE_MS).unref();
      },
    );
  };

  return superviseChannel(
    connection,
    {
      name: 'jobs-consumers',
      setup: async (ch: ConfirmChannel) => {
        await declareTopology(ch);
        await ch.prefetch(32);
        await ch.consume(Topology.eventsQueue, (msg) => {
          if (!msg) return;
          // The request id that queued the attempt: every line about its events carries it.
          const log = logger.child({ requestId: messageRequestId(msg) });
          const work = Promise.resolve().then(async () => {
            const event = decodeMessage(JobEvent, msg.content);
            await jobs.applyEvent(event);
            applied?.inc({ type: event.type });
            // Progress events are many; the others tell a job's story.
            log[event.type === 'progress' ? 'debug' : 'info'](
              { jobId: event.jobId, attempt: event.attempt, event: event.type },
              'job event handled',
            );
          });
          settle(ch, msg, work, 'job event', log);
        });
        await ch.consume(Topology.deadLetterQueue, (msg) => {
          if (!msg) return;
          const log = logger.child({ requestId: messageRequestId(msg) });
          const reason = lastDeathReason(msg);
          const work = Promise.resolve().then(async () => {
            const request = decodeMessage(ConversionRequest, msg.content);
            // A converter rejects a request (gives up on it) only once its `failed` event, which says why, is
            // confirmed: failing the job here too would race that event, and the first applied would set the
            // job's error (a GAVE_UP job could show DELIVERY_LIMIT). Only RabbitMQ's own give-ups are ours to record.
            if (reason !== 'rejected') await jobs.failUndeliverable(request, 'every delivery failed');
            log.warn(
              { jobId: request.jobId, attempt: request.attempt, reason },
              'dead-lettered conversion request handled',
            );
          });
          settle(ch, msg, work, 'dead letter', log);
        });
        const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
        await ch.bindQueue(queue, Topology.changesExchange, '');
        await ch.consume(
          queue,
          (msg) => {
            if (!msg) return;
            try {
              bus.publish(decodeMessage(JobChanged, msg.content));
            } catch (err) {
              logger.error({ err }, 'dropping a malformed job change');
            }
          },
          { noAck: true },
        );
      },
    },
    logger,
  );
}

/**
 * Why RabbitMQ dead-lettered a message this time: the newest entry of its `x-death` (RabbitMQ puts the latest
 * death first). Not `x-first-death-reason`: every request after a first attempt, or after a deferred claim, has
 * died once already in a retry queue (`expired`), and that header keeps the first death for good.
 */
function lastDeathReason(msg: ConsumeMessage): unknown {
  const deaths: unknown = msg.properties.headers?.['x-death'];
  if (!Array.isArray(deaths)) return undefined;
  const [latest] = deaths as unknown[];
  return typeof latest === 'object' && latest !== null ? (latest as { reason?: unknown }).reason : undefined;
}
