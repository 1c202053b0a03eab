import {
  AccountEventConsumer,
  connectBroker,
  createLogger,
  createMetrics,
  DependencyError,
  onShutdown,
  openDatabase,
  pingDatabase,
  redact,
  runService,
  startHealthServer,
} from '@vidmp3/shared';
import { readConfig } from './config.js';
import { EventConsumer } from './adapters/consumer.js';
import { logTransport, smtpTransport } from './adapters/mail-transport.js';
import { NotificationRepository } from './adapters/notification-repo.js';
import { UsersClient } from './adapters/users-client.js';
import { WebhookConsumer, WebhookPublisher } from './adapters/webhook-broker.js';
import { addressChecker, webhookPoster } from './adapters/webhook-http.js';
import { WebhooksClient } from './adapters/webhooks-client.js';
import { backlogGauges, eventMeter, sendMeter, webhookMeter } from './metrics.js';
import { migrations } from './migrations.js';
import { MailSender } from './services/mail-sender.js';
import { Notifier } from './services/notifier.js';
import { WebhookFanOut } from './services/webhook-fanout.js';
import { WebhookSender } from './services/webhook-sender.js';

/** Of a webhook receiver's answer, at most this much is read. */
const WEBHOOK_MAX_RESPONSE_BYTES = 4 * 1024;

/** How long start waits for RabbitMQ before giving up with one clear line (it reconnects by itself later). */
const BROKER_START_TIMEOUT_MS = 15_000;
const PRUNE_EVERY_MS = 60 * 60_000;

const config = readConfig();
const logger = createLogger('notifier', config.LOG_LEVEL).child({ notifierId: config.NOTIFIER_ID });

/** Wiring only: config → adapters → services → health server; graceful shutdown. */
runService(logger, async () => {
  const metrics = createMetrics('notifier', { enabled: config.METRICS_ENABLED });
  const pool = await openDatabase({ url: config.MYSQL_URL, migrations, logger, connectionLimit: 5 });
  const repo = new NotificationRepository(pool);
  const transport = config.SMTP_URL
    ? smtpTransport(config.SMTP_URL, config.MAIL_FROM, config.SMTP_TIMEOUT_SECONDS * 1000)
    : logTransport(config.MAIL_FROM, logger);
  if (!config.SMTP_URL) logger.warn('SMTP_URL is not set: mails are written to the log, not sent');
  const sender = new MailSender(
    repo,
    transport,
    {
      baseMs: config.MAIL_RETRY_BASE_SECONDS * 1000,
      maxMs: config.MAIL_RETRY_MAX_SECONDS * 1000,
      giveUpAfterMs: config.MAIL_GIVE_UP_HOURS * 3_600_000,
      jitter: 0.2,
    },
    logger,
    sendMeter(metrics),
    config.SEND_POLL_INTERVAL_MS,
  );
  const users = new UsersClient(config.USERS_INTERNAL_URL, config.INTERNAL_API_TOKEN);
  backlogGauges(metrics, repo, logger);

  const connection = connectBroker(config.RABBITMQ_URL, logger, metrics);
  await connection.connect({ timeout: BROKER_START_TIMEOUT_MS }).catch((err: unknown) => {
    throw new DependencyError('RabbitMQ', redact(config.RABBITMQ_URL), err);
  });
  // Webhooks: job and media events fan out to deliveries (published on their own channel), which the webhook
  // consumer sends, retrying through per-delay queues.
  const retryDelaysMs = config.WEBHOOK_RETRY_DELAYS_MS;
  const webhookUsers = new WebhooksClient(config.USERS_INTERNAL_URL, config.INTERNAL_API_TOKEN);
  const webhookPublisher = new WebhookPublisher(connection, retryDelaysMs, logger, metrics);
  const fanOut = new WebhookFanOut(webhookUsers, repo, (delivery) => webhookPublisher.publish(delivery), logger);
  const webhookSender = new WebhookSender(
    webhookUsers,
    webhookPoster(
      addressChecker({ allowLoopback: config.WEBHOOK_ALLOW_LOOPBACK, allowHttp: config.WEBHOOK_ALLOW_HTTP }),
      {
        connectTimeoutMs: config.WEBHOOK_CONNECT_TIMEOUT_MS,
        timeoutMs: config.WEBHOOK_TIMEOUT_MS,
        maxResponseBytes: WEBHOOK_MAX_RESPONSE_BYTES,
      },
    ),
    (next, delayMs) => webhookPublisher.publishRetry(next, delayMs),
    { retryDelaysMs },
    logger,
  );
  if (config.WEBHOOK_ALLOW_LOOPBACK) logger.warn('WEBHOOK_ALLOW_LOOPBACK: webhooks may be sent to loopback addresses');
  const notifier = new Notifier(repo, users, { publicUrl: config.PUBLIC_URL }, () => sender.kick(), logger, fanOut);
  const consumer = new EventConsumer(connection, notifier, logger, {
    prefetch: config.PREFETCH,
    outcome: eventMeter(metrics),
  });
  await consumer.started();
  // A deleted account's rows (pending mails to them included) go when users announces it.
  const accountEvents = new AccountEventConsumer(
    connection,
    'notifier',
    { accountDeleted: (event) => notifier.accountDeleted(event) },
    logger,
  );
  const webhookConsumer = new WebhookConsumer(connection, webhookSender, logger, {
    prefetch: config.WEBHOOK_PREFETCH,
    retryDelaysMs,
    outcome: webhookMeter(metrics),
  });
  await webhookConsumer.started();
  sender.start();
  const prune = setInterval(() => {
    const before = new Date(Date.now() - config.RETENTION_DAYS * 86_400_000);
    repo.prune(before).catch((err: unknown) => logger.warn({ err }, 'could not prune old notifications'));
  }, PRUNE_EVERY_MS);
  prune.unref();

  const health = await startHealthServer(
    config.HOST,
    config.HEALTH_PORT,
    // Events come from RabbitMQ and are recorded in MariaDB; users answers who gets what. (An SMTP outage is not
    // unreadiness: mails wait in the database, as /metrics shows.)
    {
      rabbitmq: async () => consumer.ready() && webhookConsumer.ready() && webhookPublisher.ready(),
      mysql: () => pingDatabase(pool),
      users: () => users.ping(),
    },
    metrics,
  );
  logger.info(
    { url: health.url, smtp: config.SMTP_URL ? redact(config.SMTP_URL) : 'none (mails go to the log)' },
    'notifier ready',
  );

  onShutdown(
    logger,
    async () => {
      clearInterval(prune);
      // Each waits for what it is handling (a webhook attempt: WEBHOOK_TIMEOUT_MS at most), side by side.
      await Promise.all([consumer.close(), webhookConsumer.close(), accountEvents.close()]);
      await webhookPublisher.close();
      await sender.stop();
      transport.close();
      await connection.close();
      await pool.end();
      await health.close();
    },
    (config.SHUTDOWN_GRACE_SECONDS + 5) * 1000,
  );
});
