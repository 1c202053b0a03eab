import { z } from 'zod';
import { DEV_INTERNAL_API_TOKEN, env, loadConfig } from '@vidmp3/shared';

export const ConfigSchema = z
  .object({
    NODE_ENV: env.nodeEnv(),
    LOG_LEVEL: env.logLevel(),
    HOST: z.string().default('127.0.0.1'),
    PORT: env.port(4003),
    TRUST_PROXY: z.string().default('loopback, linklocal, uniquelocal'),
    /** `/metrics` (Prometheus) on the service port; no auth, so keep the port off any public ingress. */
    METRICS_ENABLED: env.bool(true),
    MYSQL_URL: env.url('mysql://root@127.0.0.1:3306/vidmp3_jobs'),
    RABBITMQ_URL: env.url('amqp://guest:guest@127.0.0.1:5672'),
    JWKS_URL: env.url('http://127.0.0.1:4001/.well-known/jwks.json'),
    JWT_ISSUER: z.string().min(1).default('vidmp3'),
    JWT_AUDIENCE: z.string().min(1).default('vidmp3-api'),
    /** media's internal API: jobs asks it whether a video exists, is the caller's and how long it is. */
    MEDIA_INTERNAL_URL: env.url('http://127.0.0.1:4002'),
    /** Shared with media and the converter workers. */
    INTERNAL_API_TOKEN: z.string().min(16).optional(),
    /**
     * A QUEUED job whose request nobody picked up for this long is published again (by one replica); each
     * further re-publish of the same request waits twice as long (a long backlog is not re-sent every time).
     */
    SWEEP_AFTER_SECONDS: z.coerce.number().int().positive().default(600),
    /**
     * A running attempt whose worker has not reported (progress or heartbeat) for this long is taken back and
     * queued again (attempt + 1). Workers report at least every third of it (the claim tells them).
     */
    LEASE_SECONDS: z.coerce.number().positive().default(60),
    /** Attempts per job, as the workers' MAX_ATTEMPTS: a job whose lease runs out on the last one fails. */
    MAX_ATTEMPTS: z.coerce.number().int().positive().default(3),
    /** The longest input accepted for conversion. */
    MAX_INPUT_SECONDS: z.coerce
      .number()
      .positive()
      .default(4 * 3600),
    /**
     * Per-user limits (OWASP API4): a free public instance must not let one account take every converter.
     * Jobs QUEUED or RUNNING at once; convertMedia and retryJob over it answer QUOTA_EXCEEDED.
     */
    MAX_ACTIVE_JOBS_PER_USER: z.coerce.number().int().positive().default(5),
    /** Conversions started (convertMedia and retryJob) in any sliding hour; over it, QUOTA_EXCEEDED. */
    MAX_CONVERSIONS_PER_HOUR: z.coerce.number().int().positive().default(30),
    /**
     * Fair scheduling: at most this many of one user's active jobs have their request in RabbitMQ at once; the
     * rest wait QUEUED in MariaDB and are sent, oldest first, as that user's jobs finish. Another user's job
     * then waits behind at most this many of each other user's jobs, however many they queued.
     */
    MAX_DISPATCHED_PER_USER: z.coerce.number().int().positive().default(2),
  })
  .superRefine((c, ctx) => {
    if (c.NODE_ENV === 'production' && !c.INTERNAL_API_TOKEN) {
      ctx.addIssue({ code: 'custom', path: ['INTERNAL_API_TOKEN'], message: 'required in production' });
    }
  })
  .transform((c) => ({ ...c, INTERNAL_API_TOKEN: c.INTERNAL_API_TOKEN ?? DEV_INTERNAL_API_TOKEN }));

export type Config = z.output<typeof ConfigSchema>;

export const readConfig = (): Config => loadConfig(ConfigSchema, process.env, 'jobs');
