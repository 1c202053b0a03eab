import { hostname } from 'node:os';
import { z } from 'zod';
import { DEV_INTERNAL_API_TOKEN, env, loadConfig, WEBHOOK_RETRY_DELAYS_MS } from '@vidmp3/shared';

const seconds = (fallback: number) => z.coerce.number().positive().default(fallback);

/** A comma-separated list of waits in milliseconds (`10000,60000,…`). */
const delayList = (fallback: readonly number[]) =>
  z
    .string()
    .regex(/^\s*\d+(\s*,\s*\d+)*\s*$/, 'expected milliseconds separated by commas')
    .transform((list) => list.split(',').map(Number))
    .refine((delays) => delays.every((d) => d >= 10 && d <= 7 * 86_400_000), 'each delay from 10 ms to 7 days')
    .optional()
    .transform((delays) => delays ?? [...fallback]);

export const ConfigSchema = z
  .object({
    NODE_ENV: env.nodeEnv(),
    LOG_LEVEL: env.logLevel(),
    RABBITMQ_URL: env.url('amqp://guest:guest@127.0.0.1:5672'),
    /** The notifier's own database: one row per event it heard, holding the mail until it is sent. */
    MYSQL_URL: env.url('mysql://root@127.0.0.1:3306/vidmp3_notifier'),
    /** users' internal API: a user's address and whether they want the mail. */
    USERS_INTERNAL_URL: env.url('http://127.0.0.1:4001'),
    /** Bearer token for users' internal API (shared with media, jobs and the workers). */
    INTERNAL_API_TOKEN: z.string().min(16).optional(),
    /** The public origin people reach (the gateway, which serves the page): links in mails point there. */
    PUBLIC_URL: env.url('http://127.0.0.1:4000'),
    /**
     * Where mail goes: `smtp://user:pass@host:587` (STARTTLS when offered) or `smtps://…:465` (TLS). Unset (the
     * development default): mails are written to the log, clearly marked, and never sent. Required in production.
     */
    SMTP_URL: z
      .url()
      .refine((u) => /^smtps?:$/.test(new URL(u).protocol), 'expected smtp://… or smtps://…')
      .optional(),
    /** The From header of every mail. */
    MAIL_FROM: z.string().min(3).default('vidmp3 <no-reply@vidmp3.localhost>'),
    /** Connecting, the greeting, and each SMTP command: a server that stops answering is given up after this. */
    SMTP_TIMEOUT_SECONDS: seconds(30),
    /** The wait after a mail's first failed send; each further failure doubles it, up to MAIL_RETRY_MAX_SECONDS. */
    MAIL_RETRY_BASE_SECONDS: seconds(5),
    MAIL_RETRY_MAX_SECONDS: seconds(15 * 60),
    /** A mail the SMTP server kept failing to take for this long is given up (an outage shorter than it loses none). */
    MAIL_GIVE_UP_HOURS: seconds(72),
    /** How often the sender looks for mail due (it also starts at once when a mail is queued). */
    SEND_POLL_INTERVAL_MS: z.coerce.number().int().min(50).max(60_000).default(1_000),
    /** Events handled at once (RabbitMQ prefetch). */
    PREFETCH: z.coerce.number().int().min(1).max(256).default(16),
    /** Rows of sent and skipped mails are kept this long, to recognise a late duplicate of their event. */
    RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
    /** Named in logs. */
    NOTIFIER_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
    /** The /healthz, /readyz and /metrics server; 0 picks a free port. */
    HOST: z.string().default('127.0.0.1'),
    HEALTH_PORT: env.port(4011),
    /** Prometheus `/metrics` on HEALTH_PORT; no auth. */
    METRICS_ENABLED: env.bool(true),
    /**
     * Webhooks: the waits before each attempt after a failed one (attempt 2, 3, …); a delivery has this many
     * attempts plus one. Each delay has its RabbitMQ queue (vidmp3.webhooks.retry.<ms>), declared at start.
     */
    WEBHOOK_RETRY_DELAYS_MS: delayList(WEBHOOK_RETRY_DELAYS_MS),
    /**
     * Webhook URLs on loopback addresses are sent to (a receiver on this machine). Default: true in development
     * only, as users decides when a webhook is created; never in production. Checked again before every attempt.
     */
    WEBHOOK_ALLOW_LOOPBACK: env.optionalBool(),
    /** Webhooks are sent over http:// besides https://. Default: false in production, true otherwise (as users). */
    WEBHOOK_ALLOW_HTTP: env.optionalBool(),
    /** Establishing the connection (TCP and TLS) to a webhook receiver. */
    WEBHOOK_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5_000),
    /** A whole webhook attempt, from connecting to the end of the (capped) response. */
    WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
    /** Webhook deliveries sent at once (RabbitMQ prefetch of vidmp3.webhooks). */
    WEBHOOK_PREFETCH: z.coerce.number().int().min(1).max(256).default(16),
    /** On SIGTERM, how long a mail being sent may take to finish. */
    SHUTDOWN_GRACE_SECONDS: seconds(10),
  })
  .superRefine((c, ctx) => {
    if (c.NODE_ENV !== 'production') return;
    for (const name of ['INTERNAL_API_TOKEN', 'SMTP_URL'] as const) {
      if (!c[name]) ctx.addIssue({ code: 'custom', path: [name], message: 'required in production' });
    }
    if (c.WEBHOOK_ALLOW_LOOPBACK) {
      ctx.addIssue({ code: 'custom', path: ['WEBHOOK_ALLOW_LOOPBACK'], message: 'not allowed in production' });
    }
  })
  .transform((c) => ({
    ...c,
    INTERNAL_API_TOKEN: c.INTERNAL_API_TOKEN ?? DEV_INTERNAL_API_TOKEN,
    WEBHOOK_ALLOW_LOOPBACK: c.WEBHOOK_ALLOW_LOOPBACK ?? c.NODE_ENV === 'development',
    WEBHOOK_ALLOW_HTTP: c.WEBHOOK_ALLOW_HTTP ?? c.NODE_ENV !== 'production',
  }));

export type Config = z.output<typeof ConfigSchema>;

export const readConfig = (): Config => loadConfig(ConfigSchema, process.env, 'notifier');
