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
    /** A QUEUED job whose request nobody picked up for this long is published again. */
    SWEEP_AFTER_SECONDS: z.coerce.number().int().positive().default(600),
    /** The longest input accepted for conversion. */
    MAX_INPUT_SECONDS: z.coerce
      .number()
      .positive()
      .default(4 * 3600),
  })
  .superRefine((c, ctx) => {
    if (c.NODE_ENV === 'production' && !c.INTERNAL_API_TOKEN) {
      ctx.addIssue({ code: 'custom', path: ['INTERNAL_API_TOKEN'], message: 'required in production' });
    }
  })
  .transform((c) => ({ ...c, INTERNAL_API_TOKEN: c.INTERNAL_API_TOKEN ?? DEV_INTERNAL_API_TOKEN }));

export type Config = z.output<typeof ConfigSchema>;

export const readConfig = (): Config => loadConfig(ConfigSchema, process.env, 'jobs');
