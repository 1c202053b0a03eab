import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'graphql';
import {
  connectBroker,
  createMetrics,
  createTokenVerifier,
  httpTimeouts,
  jwksKeyResolver,
  multipartUploads,
  openDatabase,
  pingDatabase,
  startOutboxPublisher,
  startSubgraphServer,
  type Logger,
  type RunningServer,
} from '@vidmp3/shared';
import type { Config } from './config.js';
import type { Context } from './context.js';
import type { BlobStore } from './adapters/blob-store.js';
import { DiskBlobStore } from './adapters/blob-disk.js';
import { loadOrCreateDevKey } from './adapters/download-key.js';
import { MediaRepository } from './adapters/media-repo.js';
import { QuotaRepository } from './adapters/quota-repo.js';
import { ffprobeProber } from './adapters/prober.js';
import { uploadMeter } from './adapters/upload-meter.js';
import { fileRoutes, internalRoutes } from './http/routes.js';
import { migrations } from './migrations.js';
import { resolvers } from './resolvers.js';
import { DownloadLinks } from './services/download-links.js';
import { MediaService } from './services/media.js';
import { StorageQuotas } from './services/quotas.js';

const typeDefs = parse(readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8'));

async function openBlobStore(config: Config): Promise<{ blobs: BlobStore; scratchDir: string }> {
  if (config.MONGODB_URL) {
    const url = config.MONGODB_URL;
    // Loaded only when used: the MongoDB driver (and the 17 MiB buffer its BSON serializer allocates on load) is
    // most of what a disk-store media service would otherwise hold for nothing (issue #11).
    const { GridFsBlobStore } = await import('./adapters/blob-gridfs.js');
    // An unreachable server is the adapter's DependencyError: the driver's errors carry no socket error code.
    const blobs = await GridFsBlobStore.connect(url);
    return { blobs, scratchDir: config.SCRATCH_DIR ?? join(tmpdir(), 'vidmp3-media') };
  }
  const blobs = await DiskBlobStore.open(config.BLOB_DIR);
  // Same filesystem as the store, so accepting an upload is a rename, not a second copy.
  return { blobs, scratchDir: config.SCRATCH_DIR ?? blobs.scratchDir() };
}

/** Wiring only: config → adapters → services → server. */
export async function startMedia(config: Config, logger: Logger): Promise<RunningServer> {
  const signingKey = config.DOWNLOAD_SIGNING_KEY
    ? Buffer.from(config.DOWNLOAD_SIGNING_KEY)
    : await loadOrCreateDevKey(config.DOWNLOAD_KEY_FILE);
  const pool = await openDatabase({ url: config.MYSQL_URL, migrations, logger });
  // A start that fails here (MongoDB unreachable) leaves no MariaDB connection open behind it.
  const { blobs, scratchDir } = await openBlobStore(config).catch(async (err: unknown) => {
    await pool.end();
    throw err;
  });
  await mkdir(scratchDir, { recursive: true });
  logger.info({ store: blobs.kind }, 'blob store ready');

  const links = new DownloadLinks(signingKey, config.PUBLIC_URL, config.DOWNLOAD_URL_TTL_SECONDS);
  const metrics = createMetrics('media', { enabled: config.METRICS_ENABLED });
  // Announcements (media events) go out through the outbox: RabbitMQ away delays them, nothing else.
  const broker = connectBroker(config.RABBITMQ_URL, logger, metrics);
  const outbox = startOutboxPublisher(broker, pool, logger, metrics, 'media-publisher');
  // ffprobe's HOME and working directory: empty, its own, not the service's (nor the uploads').
  const probeDir = await mkdtemp(join(tmpdir(), 'vidmp3-ffprobe-'));
  const media = new MediaService(
    new MediaRepository(pool),
    blobs,
    ffprobeProber({
      ffprobePath: config.FFPROBE_PATH,
      timeoutMs: config.PROBE_TIMEOUT_MS,
      sandbox: {
        scratchDir: probeDir,
        limits: { addressSpaceBytes: config.PROBE_MAX_MEMORY_BYTES, cpuSeconds: config.PROBE_CPU_SECONDS },
        prlimitPath: config.PRLIMIT_PATH,
        searchPath: config.PATH,
      },
    }),
    links,
    new StorageQuotas(new QuotaRepository(pool), {
      storageBytes: config.STORAGE_QUOTA_BYTES,
      concurrentUploads: config.CONCURRENT_UPLOADS_PER_USER,
      reservationTtlMs: config.UPLOAD_RESERVATION_TTL_SECONDS * 1000,
    }),
    { scratchDir, maxUploadBytes: config.MAX_UPLOAD_BYTES },
    uploadMeter(metrics),
  );

  const server = await startSubgraphServer<Context>(
    {
      service: 'media',
      typeDefs,
      resolvers,
      logger,
      verifier: createTokenVerifier({
        keys: jwksKeyResolver(config.JWKS_URL, {
          onFetchError: (err) => logger.warn({ err }, 'JWKS refresh failed; tokens are verified with the keys held'),
        }),
        issuer: config.JWT_ISSUER,
        audience: config.JWT_AUDIENCE,
      }),
      production: config.NODE_ENV === 'production',
      trustProxy: config.TRUST_PROXY,
      shutdownGraceMs: config.SHUTDOWN_GRACE_SECONDS * 1000,
      readiness: { mysql: () => pingDatabase(pool), blobs: () => blobs.ping() },
      metrics,
      // Uploads last as long as their bytes keep coming (Node's default cut them at 5 minutes).
      timeouts: httpTimeouts(config, config.MAX_UPLOAD_BYTES + 1024 * 1024),
      context: (base) => ({ ...base, services: { media } }),
      routes: (app) => {
        fileRoutes(app, media, links);
        internalRoutes(app, media, config.INTERNAL_API_TOKEN);
      },
      // One file per request. The parser truncates silently at its limit, so it is set one byte above ours:
      // the service's own meter then sees the excess and answers PAYLOAD_TOO_LARGE.
      graphqlMiddleware: [multipartUploads({ maxFileSize: config.MAX_UPLOAD_BYTES + 1, maxFiles: 1 })],
    },
    { port: config.PORT, host: config.HOST },
  );
  return {
    ...server,
    async close() {
      await server.close();
      await outbox.close();
      await broker.close();
      await Promise.all([pool.end(), blobs.close(), rm(probeDir, { recursive: true, force: true })]);
    },
  };
}
