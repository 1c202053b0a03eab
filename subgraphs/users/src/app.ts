import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'graphql';
import {
  connectBroker,
  createMetrics,
  createTokenVerifier,
  openDatabase,
  pingDatabase,
  startOutboxPublisher,
  startSubgraphServer,
  type Logger,
  type RunningServer,
} from '@vidmp3/shared';
import type { Config } from './config.js';
import type { Context } from './context.js';
import { buildSigningKeys, loadOrCreateDevKey, parsePublicKeys } from './adapters/signing-keys.js';
import { SessionRepository } from './adapters/session-repo.js';
import { MySqlCounterStore } from './adapters/throttle-store.js';
import { UserRepository } from './adapters/user-repo.js';
import { NotificationSettingsRepository } from './adapters/notification-settings-repo.js';
import { internalRoutes } from './http/internal.js';
import { apiKeyRoutes } from './http/api-keys.js';
import { ApiKeyRepository } from './adapters/api-key-repo.js';
import { ApiKeyService } from './services/api-keys.js';
import { migrations } from './migrations.js';
import { resolvers } from './resolvers.js';
import { AccountService } from './services/accounts.js';
import { AccountEmailService } from './services/account-emails.js';
import { MailThrottle, mailThrottlePolicy } from './services/mail-throttle.js';
import { AccountTokenRepository } from './adapters/account-token-repo.js';
import { LoginThrottle, throttlePolicy } from './services/login-throttle.js';
import { sessionPolicy } from './services/session-policy.js';
import { SessionService } from './services/sessions.js';
import { TokenIssuer } from './services/tokens.js';
import { NotificationSettingsService } from './services/notification-settings.js';
import { loadOrCreateDevSecretKey, SecretBox } from './adapters/secret-box.js';
import { WebhookRepository } from './adapters/webhook-repo.js';
import { WebhookService } from './services/webhooks.js';

const typeDefs = parse(readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8'));

/** Wiring only: config → adapters → services → server. */
export async function startUsers(config: Config, logger: Logger): Promise<RunningServer> {
  const privateKey = config.JWT_PRIVATE_KEY
    ? createPrivateKey(config.JWT_PRIVATE_KEY)
    : await loadOrCreateDevKey(config.KEYS_DIR, logger);
  const keys = buildSigningKeys(privateKey, parsePublicKeys(config.JWT_PREVIOUS_PUBLIC_KEYS));
  const pool = await openDatabase({ url: config.MYSQL_URL, migrations, logger });
  const metrics = createMetrics('users', { enabled: config.METRICS_ENABLED });
  // Announcements (account events) go out through the outbox: RabbitMQ away delays them, nothing else.
  const broker = connectBroker(config.RABBITMQ_URL, logger, metrics);
  const outbox = startOutboxPublisher(broker, pool, logger, metrics, 'users-publisher');

  const tokens = new TokenIssuer(keys, {
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    ttlSeconds: config.ACCESS_TOKEN_TTL_SECONDS,
    apiKeyTtlSeconds: config.API_KEY_TOKEN_TTL_SECONDS,
  });
  const users = new UserRepository(pool);
  const sessions = new SessionService(new SessionRepository(pool), tokens, sessionPolicy(config));
  // Counters in MySQL: shared by every replica of this service.
  const throttleStore = new MySqlCounterStore(pool);
  const loginThrottle = new LoginThrottle(throttleStore, throttlePolicy(config));
  // Verification, reset and change-of-address mails; `accounts` is only asked once requests come in.
  const accountEmails: AccountEmailService = new AccountEmailService(
    users,
    new AccountTokenRepository(pool),
    { signedIn: (viewer) => accounts.signedIn(viewer) },
    sessions,
    loginThrottle,
    new MailThrottle(throttleStore, mailThrottlePolicy(config)),
    outbox,
    { publicUrl: config.PUBLIC_URL },
  );
  const accounts = await AccountService.create(users, sessions, loginThrottle, outbox, accountEmails);
  const notifications = new NotificationSettingsService(new NotificationSettingsRepository(pool), accounts);
  const apiKeys = new ApiKeyService(new ApiKeyRepository(pool), tokens, accounts, throttleStore, {
    perUser: config.API_KEYS_PER_USER,
    failuresPerAddress: {
      limit: config.API_KEY_MAX_FAILURES_PER_IP,
      windowMs: config.LOGIN_THROTTLE_WINDOW_SECONDS * 1000,
    },
  });
  const webhookKey = config.WEBHOOK_SECRET_KEY
    ? Buffer.from(config.WEBHOOK_SECRET_KEY, 'base64')
    : await loadOrCreateDevSecretKey(config.KEYS_DIR, logger);
  const webhooks = new WebhookService(new WebhookRepository(pool), new SecretBox(webhookKey), outbox, accounts, {
    allowLoopback: config.WEBHOOK_ALLOW_LOOPBACK,
    allowHttp: config.WEBHOOK_ALLOW_HTTP,
    perUser: config.WEBHOOKS_PER_USER,
    disableAfterFailedDeliveries: config.WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES,
    testsPerHour: config.WEBHOOK_TESTS_PER_HOUR,
  });
  // Deliveries are listed for WEBHOOK_DELIVERY_RETENTION_DAYS, then pruned hourly by whichever replica gets there.
  const pruneDeliveries = setInterval(() => {
    webhooks
      .pruneDeliveries(config.WEBHOOK_DELIVERY_RETENTION_DAYS)
      .catch((err: unknown) => logger.warn({ err }, 'could not prune webhook deliveries'));
  }, 3600_000);
  pruneDeliveries.unref();
  // This service verifies with its own public keys directly; everyone else fetches them from the JWKS route.
  const verifier = createTokenVerifier({
    keys: async (kid) => keys.publicKeys.get(kid),
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
  });

  const server = await startSubgraphServer<Context>(
    {
      service: 'users',
      typeDefs,
      resolvers,
      logger,
      verifier,
      production: config.NODE_ENV === 'production',
      trustProxy: config.TRUST_PROXY,
      readiness: { mysql: () => pingDatabase(pool) },
      metrics,
      context: (base) => ({ ...base, services: { accounts, notifications, apiKeys, webhooks, accountEmails } }),
      routes: (app) => {
        app.get('/.well-known/jwks.json', (_req, res) => {
          res.set('Cache-Control', 'public, max-age=300').json(keys.jwks);
        });
        internalRoutes(app, notifications, webhooks, config.INTERNAL_API_TOKEN);
        apiKeyRoutes(app, apiKeys);
      },
    },
    { port: config.PORT, host: config.HOST },
  );
  return {
    ...server,
    async close() {
      clearInterval(pruneDeliveries);
      await server.close();
      await outbox.close();
      await broker.close();
      await pool.end();
    },
  };
}
