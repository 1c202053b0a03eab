import { z } from 'zod';
import { DEV_INTERNAL_API_TOKEN, env, loadConfig } from '@vidmp3/shared';

export const ConfigSchema = z
  .object({
    NODE_ENV: env.nodeEnv(),
    LOG_LEVEL: env.logLevel(),
    HOST: z.string().default('127.0.0.1'),
    PORT: env.port(4001),
    MYSQL_URL: env.url('mysql://root@127.0.0.1:3306/vidmp3_users'),
    /**
     * Where this service announces what happened through its outbox (and hears about other services' events).
     * RabbitMQ being away delays those messages and nothing else.
     */
    RABBITMQ_URL: env.url('amqp://guest:guest@127.0.0.1:5672'),
    /** Bearer token the notifier presents on the internal API (shared with media, jobs and the workers). */
    INTERNAL_API_TOKEN: z.string().min(16).optional(),
    /** Whose X-Forwarded-For to believe, in Express `trust proxy` syntax: the gateway's addresses. */
    TRUST_PROXY: z.string().default('loopback, linklocal, uniquelocal'),
    /** `/metrics` (Prometheus) on the service port; no auth, so keep the port off any public ingress. */
    METRICS_ENABLED: env.bool(true),
    JWT_ISSUER: z.string().min(1).default('vidmp3'),
    JWT_AUDIENCE: z.string().min(1).default('vidmp3-api'),
    /**
     * Access tokens are short-lived: only this service refuses one whose session has ended; the gateway and
     * the other subgraphs accept it until it expires (docs/SECURITY.md, "Sessions"). 15 minutes: the SDK, the
     * CLI and the page renew theirs before it lapses.
     */
    ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(900),
    /**
     * Access tokens for API keys (exchanged by the gateway, docs/SECURITY.md "API keys"): a revoked key works
     * elsewhere than here for at most this long (plus the gateway's cache margin, which is inside it).
     */
    API_KEY_TOKEN_TTL_SECONDS: z.coerce.number().int().min(10).max(3600).default(300),
    /** API keys per user. */
    API_KEYS_PER_USER: z.coerce.number().int().positive().default(20),
    /** Failed key exchanges per client address per LOGIN_THROTTLE_WINDOW_SECONDS before 429. */
    API_KEY_MAX_FAILURES_PER_IP: z.coerce.number().int().positive().default(30),
    /** How long a refresh token lives unused; every refresh issues a new one with a full lifetime. */
    REFRESH_TOKEN_TTL_SECONDS: z.coerce
      .number()
      .int()
      .min(300)
      .default(30 * 86_400),
    /** The most a session lives from its sign-in, however often it is refreshed. */
    SESSION_MAX_AGE_SECONDS: z.coerce
      .number()
      .int()
      .min(300)
      .default(90 * 86_400),
    /** PEM of the ES256 (P-256) signing key. Required in production; development generates one in KEYS_DIR. */
    JWT_PRIVATE_KEY: z.string().optional(),
    /** PEMs of retired public keys still served in the JWKS so that tokens they signed stay valid. */
    JWT_PREVIOUS_PUBLIC_KEYS: z.string().optional(),
    KEYS_DIR: z.string().default('./data/keys'),
    // Sign-in throttle (services/login-throttle.ts; policy in docs/SECURITY.md). IPv6 clients count per /64.
    /** logIn attempts per client address, whatever the email, per LOGIN_THROTTLE_WINDOW_SECONDS. */
    AUTH_MAX_ATTEMPTS_PER_IP: z.coerce.number().int().positive().default(100),
    /** Failed logins per (client address, email) that cost nothing; each further one doubles a delay. */
    LOGIN_FREE_FAILURES: z.coerce.number().int().positive().default(5),
    /** The first delay after the free failures, and the most it grows to. */
    LOGIN_BACKOFF_BASE_SECONDS: z.coerce.number().int().positive().default(30),
    LOGIN_BACKOFF_MAX_SECONDS: z.coerce
      .number()
      .int()
      .positive()
      .default(15 * 60),
    /**
     * Failed logins per email from all addresses together before attempts on it are slowed (many-address
     * guessing); addresses that logged in to the account before are exempt.
     */
    LOGIN_EMAIL_FREE_FAILURES: z.coerce.number().int().positive().default(100),
    /** The most an attempt on an email under many-address guessing waits. */
    LOGIN_EMAIL_BACKOFF_MAX_SECONDS: z.coerce.number().int().positive().default(60),
    /** How long failures are remembered after the last one, and the window of AUTH_MAX_ATTEMPTS_PER_IP. */
    LOGIN_THROTTLE_WINDOW_SECONDS: z.coerce
      .number()
      .int()
      .positive()
      .default(15 * 60),
    /** How long an address that logged in to an account stays exempt from that email's many-address limit. */
    LOGIN_KNOWN_ADDRESS_DAYS: z.coerce.number().int().positive().default(30),
    /** Accounts created per client address per hour (free public instance: bulk sign-ups are abuse). */
    SIGNUP_MAX_PER_IP_PER_HOUR: z.coerce.number().int().positive().default(10),
    // Webhooks (services/webhooks.ts; docs/SECURITY.md, "Webhooks").
    /**
     * The AES-256-GCM key that webhook signing secrets are stored under: 32 bytes, base64. Required in production;
     * development generates one in KEYS_DIR. Changing it makes every stored secret unreadable.
     */
    WEBHOOK_SECRET_KEY: z
      .string()
      .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes in base64 (openssl rand -base64 32)')
      .optional(),
    /** Webhooks may point at loopback addresses (a receiver on this machine). Default: true in development only. */
    WEBHOOK_ALLOW_LOOPBACK: env.optionalBool(),
    /** Webhooks may use http:// besides https://. Default: false in production, true otherwise. */
    WEBHOOK_ALLOW_HTTP: env.optionalBool(),
    WEBHOOKS_PER_USER: z.coerce.number().int().positive().default(10),
    /** Deliveries that ended FAILED in a row (none succeeded between) after which a webhook is disabled. */
    WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES: z.coerce.number().int().positive().default(5),
    /** `sendTestWebhook` calls per webhook per hour. */
    WEBHOOK_TESTS_PER_HOUR: z.coerce.number().int().positive().default(10),
    /** How long deliveries are listed before they are pruned. */
    WEBHOOK_DELIVERY_RETENTION_DAYS: z.coerce.number().int().positive().default(30),
    /**
     * The public origin people reach (the gateway, which serves the page): the links in account mails point
     * there (`${PUBLIC_URL}/?verify-email=…`).
     */
    PUBLIC_URL: env.url('http://127.0.0.1:4000'),
    /** Account mails (password resets, verification, address changes) per address or account per hour. */
    ACCOUNT_MAILS_PER_ADDRESS_PER_HOUR: z.coerce.number().int().positive().default(5),
    /** Password resets asked for per client address per hour, whatever the email. */
    PASSWORD_RESETS_PER_IP_PER_HOUR: z.coerce.number().int().positive().default(30),
  })
  .superRefine((c, ctx) => {
    if (c.REFRESH_TOKEN_TTL_SECONDS <= c.ACCESS_TOKEN_TTL_SECONDS) {
      ctx.addIssue({
        code: 'custom',
        path: ['REFRESH_TOKEN_TTL_SECONDS'],
        message: 'must be longer than ACCESS_TOKEN_TTL_SECONDS (a refresh token renews access tokens)',
      });
    }
    if (c.SESSION_MAX_AGE_SECONDS < c.REFRESH_TOKEN_TTL_SECONDS) {
      ctx.addIssue({
        code: 'custom',
        path: ['SESSION_MAX_AGE_SECONDS'],
        message: 'must be at least REFRESH_TOKEN_TTL_SECONDS',
      });
    }
    if (c.NODE_ENV === 'production' && !c.JWT_PRIVATE_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['JWT_PRIVATE_KEY'],
        message: 'required in production (generated development keys are for one machine only)',
      });
    }
    if (c.NODE_ENV === 'production' && !c.WEBHOOK_SECRET_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['WEBHOOK_SECRET_KEY'],
        message: 'required in production (32 bytes in base64: openssl rand -base64 32)',
      });
    }
    // The notifier's API (addresses, webhooks): the notifier is part of every deployment now, as it is for media,
    // jobs and the workers.
    if (c.NODE_ENV === 'production' && !c.INTERNAL_API_TOKEN) {
      ctx.addIssue({ code: 'custom', path: ['INTERNAL_API_TOKEN'], message: 'required in production' });
    }
    if (c.NODE_ENV === 'production' && c.WEBHOOK_ALLOW_LOOPBACK) {
      ctx.addIssue({
        code: 'custom',
        path: ['WEBHOOK_ALLOW_LOOPBACK'],
        message: 'must not be true in production (webhooks would reach services on the host)',
      });
    }
  })
  .transform((c) => ({
    ...c,
    INTERNAL_API_TOKEN: c.INTERNAL_API_TOKEN ?? DEV_INTERNAL_API_TOKEN,
    WEBHOOK_ALLOW_LOOPBACK: c.WEBHOOK_ALLOW_LOOPBACK ?? c.NODE_ENV === 'development',
    WEBHOOK_ALLOW_HTTP: c.WEBHOOK_ALLOW_HTTP ?? c.NODE_ENV !== 'production',
  }));

export type Config = z.output<typeof ConfigSchema>;

export const readConfig = (): Config => loadConfig(ConfigSchema, process.env, 'users');
