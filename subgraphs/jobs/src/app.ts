import { readFileSync } from 'node:fs';
import { parse } from 'graphql';
import {
  AccountEventConsumer,
  connectBroker,
  createMetrics,
  createTokenVerifier,
  jwksKeyResolver,
  openDatabase,
  startOutboxPublisher,
  pingDatabase,
  startSubgraphServer,
  type Logger,
  type RunningServer,
} from '@vidmp3/shared';
import type { Config } from './config.js';
import type { Context } from './context.js';
import { startConsumers } from './adapters/consumers.js';
import { jobMetrics } from './adapters/job-metrics.js';
import { JobsRepository } from './adapters/jobs-repo.js';
import { MediaClient } from './adapters/media-client.js';
import { internalRoutes } from './http/internal.js';
import { migrations } from './migrations.js';
import { resolvers } from './resolvers.js';
import { ChangeBus } from './services/change-bus.js';
import { JobFeeds } from './services/job-feeds.js';
import { JobsService } from './services/jobs.js';
import { serveSubscriptions } from './subscriptions.js';

const typeDefs = parse(readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8'));

/** Wiring only: config → adapters → services → server. */
export async function startJobs(config: Config, logger: Logger): Promise<RunningServer> {
  const metrics = createMetrics('jobs', { enabled: config.METRICS_ENABLED });
  const pool = await openDatabase({ url: config.MYSQL_URL, migrations, logger });
  const broker = connectBroker(config.RABBITMQ_URL, logger, metrics);
  // Every state change is announced through the outbox (shared's outbox.ts: relay, metrics, pruning).
  const relay = startOutboxPublisher(broker, pool, logger, metrics, 'jobs-publisher');

  const repo = new JobsRepository(pool);
  jobMetrics(metrics, repo, logger);
  const bus = new ChangeBus();
  const jobs = new JobsService(
    repo,
    new MediaClient(config.MEDIA_INTERNAL_URL, config.INTERNAL_API_TOKEN),
    relay,
    bus,
    {
      maxInputSeconds: config.MAX_INPUT_SECONDS,
      sweepAfterSeconds: config.SWEEP_AFTER_SECONDS,
      leaseSeconds: config.LEASE_SECONDS,
      maxAttempts: config.MAX_ATTEMPTS,
      limits: {
        activeJobs: config.MAX_ACTIVE_JOBS_PER_USER,
        conversionsPerHour: config.MAX_CONVERSIONS_PER_HOUR,
        dispatchedPerUser: config.MAX_DISPATCHED_PER_USER,
      },
      logger,
    },
  );
  const services = { jobs, feeds: new JobFeeds(repo, bus, logger) };
  const consumer = startConsumers(broker, jobs, bus, logger, metrics);
  // A deleted account's jobs are cancelled and removed when users announces it (the accounts fanout).
  const accountEvents = new AccountEventConsumer(
    broker,
    'jobs',
    { accountDeleted: (event) => jobs.forgetAccount(event) },
    logger,
  );

  // The sweeper re-publishes requests nobody picked up, gives waiting jobs the turns a stopped replica missed,
  // and prunes old published outbox rows and conversion starts older than the hourly window.
  const sweeper = setInterval(() => {
    jobs.sweep().then(
      (n) => n > 0 && logger.warn({ jobs: n }, 're-published requests of jobs queued too long'),
      (err: unknown) => logger.warn({ err }, 'sweep failed'),
    );
    jobs.dispatchMissedTurns().then(
      (n) => n > 0 && logger.warn({ jobs: n }, 'dispatched waiting jobs whose turn was missed'),
      (err: unknown) => logger.warn({ err }, 'dispatching waiting jobs failed'),
    );
    jobs.pruneStarts().catch(() => undefined);
  }, 60_000);
  // Expired leases are looked for at least twice per lease: a job whose worker is gone waits 1.5 leases at most.
  const leases = setInterval(
    () => {
      jobs.expireLeases().then(
        (n) => n > 0 && logger.warn({ jobs: n }, 'took back running jobs whose worker stopped reporting'),
        (err: unknown) => logger.warn({ err }, 'expiring leases failed'),
      );
    },
    Math.min(60, config.LEASE_SECONDS / 2) * 1000,
  );

  const verifier = createTokenVerifier({
    keys: jwksKeyResolver(config.JWKS_URL, {
      onFetchError: (err) => logger.warn({ err }, 'JWKS refresh failed; tokens are verified with the keys held'),
    }),
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
  });
  const production = config.NODE_ENV === 'production';
  const server = await startSubgraphServer<Context>(
    {
      service: 'jobs',
      typeDefs,
      resolvers,
      logger,
      verifier,
      production,
      trustProxy: config.TRUST_PROXY,
      // RabbitMQ counts as ready when the connection is up and every channel is set up and open.
      readiness: {
        mysql: () => pingDatabase(pool),
        rabbitmq: async () => broker.isConnected() && relay.ready() && consumer.ready(),
      },
      metrics,
      context: (base) => ({ ...base, services }),
      routes: (app) => internalRoutes(app, jobs, config.INTERNAL_API_TOKEN),
    },
    { port: config.PORT, host: config.HOST },
  );
  const subscriptions = serveSubscriptions({
    server: server.server,
    schema: server.schema,
    verifier,
    services,
    logger,
    production,
  });
  return {
    ...server,
    async close() {
      clearInterval(sweeper);
      clearInterval(leases);
      await subscriptions.close();
      await server.close();
      await relay.close();
      await consumer.close();
      await accountEvents.close();
      await broker.close();
      await pool.end();
    },
  };
}
