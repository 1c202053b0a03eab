import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { DEFAULT_TOOL_PATH, DEV_INTERNAL_API_TOKEN, env, loadConfig } from '@vidmp3/shared';

const seconds = (fallback: number) => z.coerce.number().positive().default(fallback);

export const ConfigSchema = z
  .object({
    NODE_ENV: env.nodeEnv(),
    LOG_LEVEL: env.logLevel(),
    RABBITMQ_URL: env.url('amqp://guest:guest@127.0.0.1:5672'),
    MEDIA_INTERNAL_URL: env.url('http://127.0.0.1:4002'),
    JOBS_INTERNAL_URL: env.url('http://127.0.0.1:4003'),
    /** Bearer token for media's and jobs' internal APIs. */
    INTERNAL_API_TOKEN: z.string().min(16).optional(),
    /** Conversions run at once; also the RabbitMQ prefetch, so the broker never hands over more than that. */
    CONCURRENCY: z.coerce.number().int().min(1).max(64).default(1),
    /**
     * Unset (the default): the worker takes a request only when one of its ffmpeg slots is free or about to be
     * (see LOOKAHEAD_MS), through a consumer of its own for each request (prefetch 1, cancelled on delivery).
     * Set: a fixed RabbitMQ prefetch of this many requests (at least CONCURRENCY); above CONCURRENCY the extra
     * ones wait unclaimed for a slot — behind a 20-minute conversion, a long wait while another worker may be
     * idle — and are not "ready" in the queue depth an autoscaler reads.
     */
    PREFETCH: z.coerce.number().int().min(1).max(128).optional(),
    /**
     * Without PREFETCH: the next request is taken once a running ffmpeg is expected to end within this many
     * ms (from this worker's past pace, or the conversion's own), so that it is at hand when the slot frees
     * and waits no longer than about this; 0 takes it only when the slot is free.
     */
    LOOKAHEAD_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
    /** The ffmpeg binary: a path, or a name looked up on PATH. */
    FFMPEG_PATH: z.string().min(1).default('ffmpeg'),
    /** Where a bare FFMPEG_PATH is looked up; the only variable of ours that ffmpeg's environment carries. */
    PATH: z.string().min(1).default(DEFAULT_TOOL_PATH),
    /**
     * Address-space limit of each ffmpeg (RLIMIT_AS), MiB: a hostile or pathological input cannot take the
     * machine's memory. ffmpeg 5.1 maps ~290 MB of libraries before reading a byte, so it needs at least ~512.
     */
    FFMPEG_MAX_MEMORY_MB: z.coerce.number().int().min(512).default(1024),
    /**
     * CPU-time limit of each ffmpeg (RLIMIT_CPU), seconds, all its threads together; past it the kernel kills
     * it. The wall-clock limit (CONVERSION_TIMEOUT_SECONDS) does not stop a many-threaded decoder from taking
     * every core meanwhile; this bounds the total.
     */
    FFMPEG_MAX_CPU_SECONDS: z.coerce.number().int().positive().default(1200),
    /** util-linux prlimit, which applies the limits above before exec'ing ffmpeg. */
    PRLIMIT_PATH: z.string().min(1).default('/usr/bin/prlimit'),
    /**
     * Wall-clock limit of one conversion. Keep it below RabbitMQ's consumer timeout (30 min by default), with
     * room for the upload: a delivery left unacknowledged past that closes the whole channel, taking every
     * conversion on it along.
     */
    CONVERSION_TIMEOUT_SECONDS: seconds(1200),
    /** Longest input converted; longer ones are cut at this length. */
    MAX_INPUT_SECONDS: seconds(4 * 60 * 60),
    /** Attempts of one job before a transient failure fails it for good. */
    MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
    /** Where ffmpeg writes the mp3 until it is uploaded. */
    SCRATCH_DIR: z.string().min(1).default(join(tmpdir(), 'vidmp3-converter')),
    /** On SIGTERM, how long running conversions may take to finish before they are handed back. */
    SHUTDOWN_GRACE_SECONDS: seconds(25),
    /**
     * Testing aid only: read the input at this multiple of realtime (ffmpeg `-readrate`), so a conversion of
     * a short sample lasts long enough for cancel and crash tests to catch it running. Unset in production.
     */
    READRATE: z.coerce.number().positive().optional(),
    /** Named in claims and logs. */
    WORKER_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
    /** The /healthz, /readyz and /metrics server; 0 picks a free port. */
    HOST: z.string().default('127.0.0.1'),
    HEALTH_PORT: env.port(4010),
    /** Prometheus `/metrics` on HEALTH_PORT; no auth. */
    METRICS_ENABLED: env.bool(true),
  })
  .superRefine((c, ctx) => {
    if (c.PREFETCH !== undefined && c.PREFETCH < c.CONCURRENCY) {
      ctx.addIssue({ code: 'custom', path: ['PREFETCH'], message: 'must be at least CONCURRENCY' });
    }
    if (c.NODE_ENV === 'production' && !c.INTERNAL_API_TOKEN) {
      ctx.addIssue({ code: 'custom', path: ['INTERNAL_API_TOKEN'], message: 'required in production' });
    }
  })
  .transform((c) => ({
    ...c,
    INTERNAL_API_TOKEN: c.INTERNAL_API_TOKEN ?? DEV_INTERNAL_API_TOKEN,
  }));

export type Config = z.output<typeof ConfigSchema>;

export const readConfig = (): Config => loadConfig(ConfigSchema, process.env, 'converter');
