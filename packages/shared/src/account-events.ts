import type { AmqpConnectionManager } from './broker.js';
import { HeldConsumer } from './held-consumer.js';
import type { Logger } from './logger.js';
import { AccountDeleted, Topology } from './messaging.js';

/** A service's part of deleting an account: removes what it holds of the user; idempotent. */
export interface AccountDeletionHandler {
  /** Resolves with what it came to (for logs); throws while a dependency fails (the event is tried again). */
  accountDeleted(event: AccountDeleted): Promise<string>;
}

export interface AccountEventConsumerOptions {
  retryBaseMs?: number;
  retryMaxMs?: number;
  holdMs?: number;
}

/**
 * Takes `AccountDeleted` events from one service's queue on the accounts fanout, one at a time (a deletion can be
 * long, and they are rare), held and retried while a dependency fails (shared's HeldConsumer).
 */
export class AccountEventConsumer extends HeldConsumer<AccountDeleted> {
  constructor(
    connection: AmqpConnectionManager,
    service: 'media' | 'jobs' | 'notifier',
    handler: AccountDeletionHandler,
    logger: Logger,
    options: AccountEventConsumerOptions = {},
  ) {
    super(connection, logger, {
      ...options,
      queue: Topology.accountsQueue(service),
      name: `${service}-accounts`,
      schema: AccountDeleted,
      prefetch: 1,
      handle: (event) => handler.accountDeleted(event),
      describe: (event) => ({ eventId: event.eventId, userId: event.userId }),
    });
  }
}
