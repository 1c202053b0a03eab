import { HeldConsumer, NotifierEvent, Topology, type AmqpConnectionManager, type Logger } from '@vidmp3/shared';

export interface EventHandler {
  /** Resolves with what it came to (for logs and metrics); throws when a dependency failed. */
  handle(event: NotifierEvent): Promise<string>;
}

export interface ConsumerOptions {
  prefetch: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  holdMs?: number;
  /** Called with each event's outcome, and `malformed` for a message that is not one. */
  outcome?: (outcome: string) => void;
}

/**
 * Takes the notifier's events from RabbitMQ (shared's HeldConsumer: manual acks, prefetch, held and retried with
 * backoff while users or the database fail, handed back after a while; the queue dead-letters an event after
 * Topology.notificationsDeliveryLimit deliveries, and a message that is not an event at once).
 */
export class EventConsumer extends HeldConsumer<NotifierEvent> {
  constructor(connection: AmqpConnectionManager, handler: EventHandler, logger: Logger, options: ConsumerOptions) {
    super(connection, logger, {
      ...options,
      queue: Topology.notificationsQueue,
      name: 'notifier',
      schema: NotifierEvent,
      handle: (event) => handler.handle(event),
      describe: (event) => ({ eventId: event.eventId }),
    });
  }
}
