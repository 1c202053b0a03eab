import { mkdir } from 'node:fs/promises';
import {
  DependencyError,
  connectBroker,
  createLogger,
  createMetrics,
  onShutdown,
  redact,
  runService,
  startHealthServer,
} from '@vidmp3/shared';
import { readConfig } from './config.js';
import { JobsClient } from './jobs-client.js';
import { MediaClient } from './media-client.js';
import { openInput, transcode, warmUp } from './transcoder.js';
import { ffmpegLimits } from './conversion.js';
import { ConverterWorker } from './worker.js';

/** How long start waits for RabbitMQ before giving up with one clear line (it reconnects by itself later). */
const BROKER_START_TIMEOUT_MS = 15_000;

const config = readConfig();
const logger = createLogger('converter', config.LOG_LEVEL).child({ workerId: config.WORKER_ID });

runService(logger, async () => {
  await mkdir(config.SCRATCH_DIR, { recursive: true, mode: 0o700 });
  await warmUp(config.FFMPEG_PATH, ffmpegLimits(config), config.SCRATCH_DIR);
  const metrics = createMetrics('converter', { enabled: config.METRICS_ENABLED });
  const connection = connectBroker(config.RABBITMQ_URL, logger, metrics);
  await connection.connect({ timeout: BROKER_START_TIMEOUT_MS }).catch((err: unknown) => {
    throw new DependencyError('RabbitMQ', redact(config.RABBITMQ_URL), err);
  });
  const media = new MediaClient(config.MEDIA_INTERNAL_URL, config.INTERNAL_API_TOKEN);
  const worker = new ConverterWorker({
    connection,
    media,
    jobs: new JobsClient(config.JOBS_INTERNAL_URL, config.INTERNAL_API_TOKEN, config.WORKER_ID),
    transcode,
    openInput,
    logger,
    settings: config,
    metrics,
  });
  await worker.start();
  const health = await startHealthServer(
    config.HOST,
    config.HEALTH_PORT,
    // Without RabbitMQ no work arrives; without media's internal API none can be done.
    { rabbitmq: async () => worker.isReady(), media: () => media.ping() },
    metrics,
  );
  logger.info({ url: health.url, concurrency: config.CONCURRENCY }, 'converter ready');

  onShutdown(
    logger,
    async () => {
      await worker.close();
      await connection.close();
      await health.close();
    },
    // Room past the grace period to hand the remaining conversions back and close the connection.
    (config.SHUTDOWN_GRACE_SECONDS + 5) * 1000,
  );
});
