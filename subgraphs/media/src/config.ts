import { z } from 'zod';
import { DEFAULT_TOOL_PATH, DEV_INTERNAL_API_TOKEN, env, httpTimeoutSettings, loadConfig } from '@vidmp3/shared';

/**
 * A MongoDB connection string, checked for its shape only (the driver parses it at start). Not `z.url()`: a
 * replica set's hosts with their ports (`mongodb://a:27017,b:27017/db`) are no WHATWG URL, while `localhost:27017`
 * and `http://…` are, and would only fail at start.
 */
const mongoConnectionString = z
  .string()
  .regex(
    /^mongodb(?:\+srv)?:\/\/(?:[^@/?#]+@)?[^@/?#,]+(?:,[^@/?#,]+)*(?:\/[^?#]*)?(?:\?[^#]*)?$/,
    'must be a mongodb:// or mongodb+srv:// connection string naming at least one host',
  );

export const ConfigSchema = z
  .object({
    NODE_ENV: env.nodeEnv(),
    LOG_LEVEL: env.logLevel(),
    HOST: z.string().default('127.0.0.1'),
    PORT: env.port(4002),
    TRUST_PROXY: z.string().default('loopback, linklocal, uniquelocal'),
    /** `/metrics` (Prometheus) on the service port; no auth, so keep the port off any public ingress. */
    METRICS_ENABLED: env.bool(true),
    MYSQL_URL: env.url('mysql://root@127.0.0.1:3306/vidmp3_media'),
    /**
     * Where this service announces what happened through its outbox (and hears about other services' events).
     * RabbitMQ being away delays those messages and nothing else.
     */
    RABBITMQ_URL: env.url('amqp://guest:guest@127.0.0.1:5672'),
    /** Set → blobs in MongoDB GridFS; unset → blobs on local disk under BLOB_DIR. */
    MONGODB_URL: mongoConnectionString.optional(),
    BLOB_DIR: z.string().default('./data/blobs'),
    /** Where uploads are written while they are checked; defaults to the disk store's own temp dir. */
    SCRATCH_DIR: z.string().optional(),
    MAX_UPLOAD_BYTES: z.coerce
      .number()
      .int()
      .positive()
      .default(2 * 1024 ** 3),
    /** Per-user storage quota, bytes: uploaded videos plus converted mp3s not deleted. */
    STORAGE_QUOTA_BYTES: z.coerce
      .number()
      .int()
      .positive()
      .default(2 * 1024 ** 3),
    /** Uploads one user may have in progress at once, counted across every media replica. */
    CONCURRENT_UPLOADS_PER_USER: z.coerce.number().int().positive().default(2),
    /**
     * How long an upload's reservation (bytes held, a slot among the concurrent uploads) survives without a
     * sign of life from its replica: after a crash the user gets the slot back this much later.
     */
    UPLOAD_RESERVATION_TTL_SECONDS: z.coerce.number().int().min(3).max(3600).default(60),
    JWKS_URL: env.url('http://127.0.0.1:4001/.well-known/jwks.json'),
    JWT_ISSUER: z.string().min(1).default('vidmp3'),
    JWT_AUDIENCE: z.string().min(1).default('vidmp3-api'),
    /** The public origin clients reach (the gateway), for download URLs. */
    PUBLIC_URL: env.url('http://127.0.0.1:4000'),
    /** HMAC key for download URLs (≥ 32 bytes). Development generates one in DOWNLOAD_KEY_FILE. */
    DOWNLOAD_SIGNING_KEY: z.string().min(32).optional(),
    DOWNLOAD_KEY_FILE: z.string().default('./data/media/download-signing.key'),
    DOWNLOAD_URL_TTL_SECONDS: z.coerce.number().int().min(10).max(86_400).default(900),
    /** Bearer token converter workers present on the internal API. */
    INTERNAL_API_TOKEN: z.string().min(16).optional(),
    /** After SIGTERM: how long uploads and downloads in flight may still take. */
    SHUTDOWN_GRACE_SECONDS: env.shutdownGrace(),
    FFPROBE_PATH: z.string().default('ffprobe'),
    /** Where a bare FFPROBE_PATH is looked up; the only variable of ours that ffprobe's environment carries. */
    PATH: z.string().min(1).default(DEFAULT_TOOL_PATH),
    PROBE_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
    /**
     * ffprobe's address-space limit (RLIMIT_AS): it parses untrusted files, so a decompression bomb or a
     * demuxer bug stops here. Below ~512 MiB ffprobe does not start (it maps ~290 MB of libraries).
     */
    PROBE_MAX_MEMORY_BYTES: z.coerce
      .number()
      .int()
      .min(512 * 1024 ** 2)
      .default(1024 ** 3),
    /** ffprobe's CPU-time limit (RLIMIT_CPU), seconds; the wall-clock limit is PROBE_TIMEOUT_MS. */
    PROBE_CPU_SECONDS: z.coerce.number().int().positive().default(30),
    /** util-linux prlimit, which sets the limits and then runs ffprobe in the same process. */
    PRLIMIT_PATH: z.string().default('/usr/bin/prlimit'),
    /** How long an upload's bytes may take to arrive (base, minimum rate, idle): see the shared settings. */
    ...httpTimeoutSettings,
  })
  .superRefine((c, ctx) => {
    if (c.NODE_ENV !== 'production') return;
    for (const name of ['DOWNLOAD_SIGNING_KEY', 'INTERNAL_API_TOKEN'] as const) {
      if (!c[name]) ctx.addIssue({ code: 'custom', path: [name], message: 'required in production' });
    }
  })
  .transform((c) => ({ ...c, INTERNAL_API_TOKEN: c.INTERNAL_API_TOKEN ?? DEV_INTERNAL_API_TOKEN }));

export type Config = z.output<typeof ConfigSchema>;

export const readConfig = (): Config => loadConfig(ConfigSchema, process.env, 'media');
