// How each deployable runs, written once: the container smoke test (smoke.test.ts) starts the images exactly so,
// and deploy-files.test.ts holds docker-compose.yml and the rendered Kubernetes manifests to the same description.
// A change to how a service runs (a new variable, a writable path, a port, the user) is made here first, proved
// by the real containers, and then the compose file and the manifests must follow.
import type { Deployable } from '../lib/service-env.js';

/** The version tag of the images (compose's `${VIDMP3_VERSION:-…}` default and the manifests' tag). */
export const IMAGE_VERSION = '0.1.0';

/** Every image runs as the base image's `node` user; Kubernetes names it by number (runAsUser/runAsGroup). */
export const RUN_AS = { user: 'node', uid: 1000, gid: 1000 } as const;

/** A path the service may write to; everything else is read-only (compose `read_only`, `readOnlyRootFilesystem`). */
export interface Writable {
  path: string;
  /** tmpfs: compose `tmpfs`, an `emptyDir` on Kubernetes. volume: a named volume, an `emptyDir` on Kubernetes. */
  kind: 'tmpfs' | 'volume';
}

export interface ServiceSpec {
  /** The Dockerfile target, the compose service, the Deployment and its one container. */
  name: Deployable;
  /** The image's repository; compose and the manifests tag it IMAGE_VERSION. */
  image: `vidmp3/${Deployable}`;
  /** The image's CMD, which neither compose nor the manifests override. */
  command: readonly string[];
  /** The port of the service and its health routes, and the variable that sets it. */
  port: { variable: 'PORT' | 'HEALTH_PORT'; number: number };
  /** Further ports the service listens on, by the variable that sets each. */
  otherPorts: Readonly<Record<string, number>>;
  writable: readonly Writable[];
  /**
   * Variables compose and the manifests both set (secrets among them: k8s/test/policy.ts SECRET_ENV says which);
   * the smoke test sets every one of these too.
   */
  env: readonly string[];
  /** Set by one platform only, each for a reason given below; the smoke test sets these as well. */
  composeOnly: readonly string[];
  k8sOnly: readonly string[];
  /** Files under /app the service cannot run without (a missing COPY in the Dockerfile shows here first). */
  files: readonly string[];
  /** Debian's ffmpeg (ffprobe) in the image. */
  ffmpeg: boolean;
}

const COMMON = ['NODE_ENV', 'LOG_LEVEL', 'HOST'] as const;
const TMP: Writable = { path: '/tmp', kind: 'tmpfs' };
const SCRATCH: Writable = { path: '/scratch', kind: 'volume' };

// Platform differences, and why:
// - TRUST_PROXY: on Kubernetes the ingress controller's pods are the proxies (cluster-private ranges, set in the
//   ConfigMaps); under compose the subgraphs keep their default (the compose network) and the gateway, whose port
//   is published, believes loopback only (set in the compose file).
// - MAX_UPLOAD_BYTES: stated in the ConfigMaps beside the ingress's body-size limit, which must match it.
// - WORKER_ID, NOTIFIER_ID: the pod's name on Kubernetes; under compose the default (hostname and pid) is unique
//   already, since every container has its own hostname.
export const SERVICES: readonly ServiceSpec[] = [
  {
    name: 'users',
    image: 'vidmp3/users',
    command: ['node', 'subgraphs/users/dist/main.js'],
    port: { variable: 'PORT', number: 4001 },
    otherPorts: {},
    writable: [TMP],
    env: [
      ...COMMON,
      'PORT',
      'MYSQL_URL',
      // Account events go out through users' outbox.
      'RABBITMQ_URL',
      'JWT_PRIVATE_KEY',
      'JWT_PREVIOUS_PUBLIC_KEYS',
      'WEBHOOK_SECRET_KEY',
      // Its internal API (the notifier asks for a user's address): not served without it in production.
      'INTERNAL_API_TOKEN',
    ],
    composeOnly: [],
    k8sOnly: ['TRUST_PROXY'],
    files: ['subgraphs/users/dist/main.js', 'subgraphs/users/schema.graphql', 'packages/shared/dist/index.js'],
    ffmpeg: false,
  },
  {
    name: 'media',
    image: 'vidmp3/media',
    command: ['node', 'subgraphs/media/dist/main.js'],
    port: { variable: 'PORT', number: 4002 },
    otherPorts: {},
    writable: [TMP, SCRATCH],
    env: [
      ...COMMON,
      'PORT',
      'SHUTDOWN_GRACE_SECONDS',
      'MYSQL_URL',
      'MONGODB_URL',
      // Media events go out through its outbox; account deletions come in.
      'RABBITMQ_URL',
      'SCRATCH_DIR',
      'JWKS_URL',
      'PUBLIC_URL',
      'DOWNLOAD_SIGNING_KEY',
      'INTERNAL_API_TOKEN',
    ],
    composeOnly: [],
    k8sOnly: ['TRUST_PROXY', 'MAX_UPLOAD_BYTES'],
    files: ['subgraphs/media/dist/main.js', 'subgraphs/media/schema.graphql', 'packages/shared/dist/index.js'],
    ffmpeg: true,
  },
  {
    name: 'jobs',
    image: 'vidmp3/jobs',
    command: ['node', 'subgraphs/jobs/dist/main.js'],
    port: { variable: 'PORT', number: 4003 },
    otherPorts: {},
    writable: [TMP],
    env: [...COMMON, 'PORT', 'MYSQL_URL', 'RABBITMQ_URL', 'JWKS_URL', 'MEDIA_INTERNAL_URL', 'INTERNAL_API_TOKEN'],
    composeOnly: [],
    k8sOnly: ['TRUST_PROXY'],
    files: ['subgraphs/jobs/dist/main.js', 'subgraphs/jobs/schema.graphql', 'packages/shared/dist/index.js'],
    ffmpeg: false,
  },
  {
    name: 'gateway',
    image: 'vidmp3/gateway',
    command: ['node', 'gateway/dist/main.js'],
    port: { variable: 'PORT', number: 4000 },
    otherPorts: { METRICS_PORT: 9464 },
    writable: [TMP],
    env: [
      ...COMMON,
      'PORT',
      'SHUTDOWN_GRACE_SECONDS',
      'SUBGRAPH_USERS_URL',
      'SUBGRAPH_MEDIA_URL',
      'SUBGRAPH_JOBS_URL',
      'JWKS_URL',
      'ALLOWED_ORIGINS',
      'TRUST_PROXY',
      'METRICS_PORT',
    ],
    composeOnly: [],
    k8sOnly: ['MAX_UPLOAD_BYTES'],
    files: ['gateway/dist/main.js', 'supergraph.graphql', 'web/dist/index.html', 'packages/shared/dist/index.js'],
    ffmpeg: false,
  },
  {
    name: 'converter',
    image: 'vidmp3/converter',
    command: ['node', 'workers/converter/dist/main.js'],
    port: { variable: 'HEALTH_PORT', number: 4010 },
    otherPorts: {},
    writable: [TMP, SCRATCH],
    env: [
      ...COMMON,
      'HEALTH_PORT',
      'RABBITMQ_URL',
      'MEDIA_INTERNAL_URL',
      'JOBS_INTERNAL_URL',
      'INTERNAL_API_TOKEN',
      'CONCURRENCY',
      'CONVERSION_TIMEOUT_SECONDS',
      'SHUTDOWN_GRACE_SECONDS',
      'SCRATCH_DIR',
    ],
    composeOnly: [],
    k8sOnly: ['WORKER_ID'],
    files: ['workers/converter/dist/main.js', 'packages/shared/dist/index.js'],
    ffmpeg: true,
  },
  {
    name: 'notifier',
    image: 'vidmp3/notifier',
    command: ['node', 'workers/notifier/dist/main.js'],
    port: { variable: 'HEALTH_PORT', number: 4011 },
    otherPorts: {},
    // Mails wait in its database, never on disk.
    writable: [TMP],
    env: [
      ...COMMON,
      'HEALTH_PORT',
      'RABBITMQ_URL',
      'MYSQL_URL',
      'USERS_INTERNAL_URL',
      'INTERNAL_API_TOKEN',
      'PUBLIC_URL',
      'SMTP_URL',
      'MAIL_FROM',
    ],
    composeOnly: [],
    k8sOnly: ['NOTIFIER_ID'],
    files: ['workers/notifier/dist/main.js', 'packages/shared/dist/index.js'],
    ffmpeg: false,
  },
];

export const serviceSpec = (name: Deployable): ServiceSpec => {
  const spec = SERVICES.find((s) => s.name === name);
  if (!spec) throw new Error(`no service ${name}`);
  return spec;
};

/** What compose sets for a service, and what the manifests set. */
export const composeEnv = (s: ServiceSpec): string[] => [...s.env, ...s.composeOnly].sort();
export const k8sEnv = (s: ServiceSpec): string[] => [...s.env, ...s.k8sOnly].sort();

/**
 * Where the smoke run departs from both platforms, and why. It runs on the host network against the machine's
 * MariaDB and RabbitMQ, where no MongoDB server exists: media keeps blobs on local disk (BLOB_DIR, on a volume of
 * its own) instead of GridFS (MONGODB_URL); the first converter reads its input slowly (READRATE), so that a
 * conversion lasts long enough to stop that converter in the middle of it.
 */
export const SMOKE_DEPARTURES: Readonly<
  Partial<Record<Deployable, { drop: readonly string[]; add: readonly string[]; writable: readonly Writable[] }>>
> = {
  media: { drop: ['MONGODB_URL'], add: ['BLOB_DIR'], writable: [{ path: '/blobs', kind: 'volume' }] },
  converter: { drop: [], add: ['READRATE'], writable: [] },
};

/** The variables the smoke run sets for a service: everything either platform sets, with its departures. */
export function smokeEnv(s: ServiceSpec): string[] {
  const departures = SMOKE_DEPARTURES[s.name];
  const names = new Set([...s.env, ...s.composeOnly, ...s.k8sOnly, ...(departures?.add ?? [])]);
  for (const name of departures?.drop ?? []) names.delete(name);
  return [...names].sort();
}

export const smokeWritable = (s: ServiceSpec): Writable[] => [
  ...s.writable,
  ...(SMOKE_DEPARTURES[s.name]?.writable ?? []),
];
