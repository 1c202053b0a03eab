// Policy checks over rendered manifests. `checkPolicies` returns violations as sentences (empty: compliant), so a
// test can both require none and show that removing a probe, a limit or runAsNonRoot is caught.
import { Topology } from '@vidmp3/shared';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IIngress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVarSource } from 'kubernetes-models/v1/EnvVarSource';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import type { IScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { DEPLOYABLES, HEALTH_PORTS, configEnv, type Deployable } from '../../scripts/lib/service-env.js';
import type { KubeObject } from './validate.js';

export interface PolicyOptions {
  /** The overlay must scale the workers with KEDA. */
  requireKeda: boolean;
}

type Workload = (IDeployment | IStatefulSet) & KubeObject;

const GiB = 1024 ** 3;

/** Who may open connections to whom (pods by their app.kubernetes.io/name; namespace:<name> for other namespaces). */
const ALLOWED_INGRESS: Record<string, string[]> = {
  gateway: ['namespace:ingress-nginx'],
  // The JWKS, for verifying tokens; the internal API, for a user's address.
  users: ['gateway', 'media', 'jobs', 'notifier'],
  // The internal API: jobs asks about videos, workers read inputs and write outputs.
  media: ['gateway', 'jobs', 'converter'],
  // The internal claim API.
  jobs: ['gateway', 'converter'],
  converter: [],
  notifier: [],
  mysql: ['users', 'media', 'jobs', 'notifier'],
  mongodb: ['media'],
  // KEDA's operator reads the work queue's length from the management API (dev: in-cluster RabbitMQ).
  rabbitmq: ['users', 'media', 'jobs', 'converter', 'notifier', 'namespace:keda'],
};
/** Prometheus scrapes /metrics everywhere. */
const ALLOWED_INGRESS_EVERYWHERE = ['namespace:monitoring'];

/** Where each pod may connect: <peer>:<port>, `anywhere` for data services outside the cluster. */
const ALLOWED_EGRESS: Record<string, string[]> = {
  gateway: ['users:4001', 'media:4002', 'jobs:4003'],
  // RabbitMQ: users and media publish events through their outboxes (media also hears of deleted accounts).
  users: ['anywhere:3306', 'anywhere:5672', 'anywhere:5671'],
  media: ['users:4001', 'anywhere:3306', 'anywhere:27017', 'anywhere:5672', 'anywhere:5671'],
  jobs: ['users:4001', 'media:4002', 'anywhere:3306', 'anywhere:5672', 'anywhere:5671'],
  // Workers: RabbitMQ and the internal APIs of media and jobs, nothing else.
  converter: ['media:4002', 'jobs:4003', 'anywhere:5672', 'anywhere:5671'],
  // users' internal API, its database, RabbitMQ, and the SMTP server (submission 587, TLS 465).
  // …and webhook receivers, on public addresses only (the ipBlocks' exceptions: k8s/test/manifests.test.ts).
  notifier: [
    'users:4001',
    'anywhere:3306',
    'anywhere:5672',
    'anywhere:5671',
    'anywhere:587',
    'anywhere:465',
    'ip:0.0.0.0/0:443',
    'ip:0.0.0.0/0:80',
    'ip:::/0:443',
    'ip:::/0:80',
  ],
  mysql: [],
  mongodb: [],
  rabbitmq: [],
};
const ALLOWED_EGRESS_EVERYWHERE = ['namespace:kube-system:53'];

/** Deployments whose requests or jobs run long (uploads, downloads, conversions): their shutdown grace is checked. */
export const LONG_SHUTDOWN_SERVICES = ['gateway', 'media', 'converter'] as const;

/**
 * The variables that carry a secret: those the deployables' src/config.ts read, and the passwords the data-service
 * images of the dev overlay and docker-compose.yml read. A `value` variable holds the secret itself: it comes from a
 * Secret (env valueFrom.secretKeyRef, or envFrom.secretRef), never from a literal `value:` or a ConfigMap, which are
 * committed here and readable by whoever may read the namespace's Deployments and ConfigMaps. A `path` variable
 * names the file or directory holding a secret: it must lie on a mounted Secret volume. The images' `<NAME>_FILE`
 * variants of a `value` variable are `path` variables too. scripts/containers.test.ts holds docker-compose.yml to
 * the same list.
 */
export const SECRET_ENV: Readonly<Record<string, 'value' | 'path'>> = {
  // Connection URLs, each with its account's password: users, media, jobs and the notifier (MySQL), media
  // (GridFS), every service and worker (RabbitMQ), the notifier's mail server (SMTP).
  MYSQL_URL: 'value',
  MONGODB_URL: 'value',
  RABBITMQ_URL: 'value',
  SMTP_URL: 'value',
  // users: the ES256 signing key, and the retired public keys rotated with it (docs/DEPLOY.md, key rotation).
  JWT_PRIVATE_KEY: 'value',
  JWT_PREVIOUS_PUBLIC_KEYS: 'value',
  // users: the key webhook signing secrets are stored under.
  WEBHOOK_SECRET_KEY: 'value',
  // Where users keeps its signing key when JWT_PRIVATE_KEY is unset (jwt-es256.pem, generated if missing).
  KEYS_DIR: 'path',
  // media: the HMAC key of download links, or the file it is kept in when unset.
  DOWNLOAD_SIGNING_KEY: 'value',
  DOWNLOAD_KEY_FILE: 'path',
  // Of the internal APIs of users, media and jobs; the converter and the notifier present it too.
  INTERNAL_API_TOKEN: 'value',
  // The data services: MariaDB's root account (either name) and the per-service accounts its init script creates,
  // MongoDB's root account and media's, RabbitMQ's account.
  MARIADB_ROOT_PASSWORD: 'value',
  MYSQL_ROOT_PASSWORD: 'value',
  USERS_DB_PASSWORD: 'value',
  MEDIA_DB_PASSWORD: 'value',
  JOBS_DB_PASSWORD: 'value',
  NOTIFIER_DB_PASSWORD: 'value',
  MONGO_INITDB_ROOT_PASSWORD: 'value',
  MEDIA_MONGO_PASSWORD: 'value',
  RABBITMQ_DEFAULT_PASS: 'value',
};

/** Whether a variable carries a secret (SECRET_ENV), itself or as the path of a file holding it. */
export function secretKind(name: string): 'value' | 'path' | undefined {
  if (Object.hasOwn(SECRET_ENV, name)) return SECRET_ENV[name];
  const base = name.replace(/_FILE$/, '');
  return base !== name && Object.hasOwn(SECRET_ENV, base) && SECRET_ENV[base] === 'value' ? 'path' : undefined;
}

/**
 * Every sentence the checks below can produce, by name; `{name}` marks what say() fills in. One table, so that a
 * test can show each of them triggered by a mutated render (k8s/test/manifests.test.ts, which fails on a name it
 * has no mutation for).
 */
export const POLICY_MESSAGES = {
  deploymentMissing: 'Deployment/{name}: missing',
  noPodSpec: '{object}: no pod template',
  automountToken: '{object}: automountServiceAccountToken is not false',
  podRunAsRoot: '{object}: pod securityContext.runAsNonRoot is not true',
  emptyDirUnbounded: '{object}: emptyDir volume {volume} has no sizeLimit',
  volumeMissingConfigMap: '{object}: volume {volume} uses ConfigMap {name} that does not exist',
  envFromMissingConfigMap: '{where}: envFrom ConfigMap {name} does not exist',
  noResource: '{where}: no {bound}.{resource}',
  unreadVariable: '{where}: sets {name}, which the {deployable} config (src/config.ts) does not read',
  scratchNotBounded: '{where}: SCRATCH_DIR {path} is not a mounted emptyDir with a sizeLimit',
  noProbe: '{where}: no {kind}',
  probeOffHealthRoute: '{where}: {kind} is not GET {path} on port {port}',
  containerRunAsRoot: '{where}: runs without runAsNonRoot',
  writableRootFilesystem: '{where}: securityContext.readOnlyRootFilesystem is not true',
  privilegeEscalation: '{where}: securityContext.allowPrivilegeEscalation is not false',
  capabilitiesKept: '{where}: securityContext.capabilities.drop lacks ALL',
  noImage: '{where}: no image',
  imageUntagged: '{where}: image {image} has no tag',
  imageLatest: '{where}: image {image} uses the latest tag',
  noDisruptionBudget: '{object}: runs {replicas} replicas and has no PodDisruptionBudget',
  secretCommitted:
    '{object}: has data committed; secrets are created in the cluster (docs/DEPLOY.md), only referenced here',
  secretInConfigMap:
    '{object}: carries the secret {key}; secrets are created in the cluster (docs/DEPLOY.md), only referenced here',
  secretLiteral: '{where}: sets the secret {name} as a literal value; take it from a Secret (valueFrom.secretKeyRef)',
  secretFromElsewhere: '{where}: takes the secret {name} from {source}, not from a Secret (secretKeyRef)',
  secretPathOffSecretVolume: '{where}: {name} {path} is not on a mounted Secret volume',
  noDefaultDeny: 'NetworkPolicy: no default deny (podSelector {}, policyTypes Ingress and Egress, no rules)',
  ingressTooOpen: 'NetworkPolicy: {pod} accepts ingress from {peer}',
  ingressTooClosed: 'NetworkPolicy: {pod} does not accept ingress from {peer}',
  egressTooOpen: 'NetworkPolicy: {pod} may connect to {peer}',
  egressTooClosed: 'NetworkPolicy: {pod} cannot connect to {peer}',
  noMetricsPort: '{object}: no METRICS_PORT, so /metrics is served on the public port {port}',
  metricsOnPublicPort: '{object}: METRICS_PORT {port} is the public port, so /metrics is public',
  metricsPortNotExposed: '{object}: METRICS_PORT {port} is not a containerPort',
  scrapePortWrong: '{object}: prometheus.io/port {annotated} is not its metrics port {port}',
  prometheusBlocked: 'NetworkPolicy: Prometheus (namespace monitoring) cannot reach {pod}:{port}',
  kedaBlocked: 'NetworkPolicy: KEDA (namespace keda) cannot reach rabbitmq:{port}',
  noGatewayAutoscaler: 'HorizontalPodAutoscaler: none targets Deployment/gateway',
  noWorkerScaler: 'ScaledObject: none targets Deployment/converter',
  scalerTargetsOther: '{object}: targets {target}, not the converter workers',
  triggerWrongQueue: '{object}: trigger {type} on {queue} is not the work queue {workQueue}',
  // Over AMQP KEDA counts only waiting messages; the management API also counts the ones being converted.
  triggerCountsWaitingOnly:
    '{object}: trigger must count waiting and running conversions (protocol http, mode QueueLength)',
  triggerUnauthenticated: '{object}: trigger has no authenticationRef (a TriggerAuthentication from a Secret)',
  triggerAuthMissing: '{object}: TriggerAuthentication {name} does not exist',
  noIngress: 'Ingress: none routes to the gateway',
  bodySizeTooSmall: '{object}: proxy-body-size {size} is below MAX_UPLOAD_BYTES ({max})',
  uploadsBuffered: '{object}: uploads are buffered (proxy-request-buffering is not off)',
  proxyTimeoutShort: '{object}: {annotation} {value} cuts WebSockets and long uploads (< 3600)',
  routesElsewhere: '{object}: routes {path} to {backend}',
  graceUnset: '{object}: SHUTDOWN_GRACE_SECONDS is not set; requests in flight are cut after the default',
  terminationTooShort:
    '{object}: terminationGracePeriodSeconds {termination} < preStop {preStop} + SHUTDOWN_GRACE_SECONDS {grace} + 5 ({needed})',
  graceBelowConversion:
    '{object}: SHUTDOWN_GRACE_SECONDS {grace} < CONVERSION_TIMEOUT_SECONDS {longest}: stopping cuts conversions',
} as const;

export type PolicyMessage = keyof typeof POLICY_MESSAGES;

/** The sentence of a check, its `{name}` placeholders filled in (a name without a value stays as it is). */
function say(message: PolicyMessage, values: Record<string, string | number>): string {
  return POLICY_MESSAGES[message].replace(/\{(\w+)\}/g, (whole, name: string) =>
    Object.hasOwn(values, name) ? String(values[name]) : whole,
  );
}

const INGRESS_ANNOTATIONS = 'nginx.ingress.kubernetes.io/';

/** RabbitMQ's management API, which KEDA's rabbitmq trigger (protocol http) queries. */
const RABBITMQ_MANAGEMENT_PORT = 15672;

const of = <T>(objects: KubeObject[], kind: string) =>
  objects.filter((o) => o.kind === kind) as unknown as (T & KubeObject)[];
const id = (o: KubeObject) => `${o.kind}/${o.metadata.name}`;
const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

/** The environment of a container: literal values, ConfigMap values, or `undefined` for secrets and fields. */
function containerEnv(container: IContainer, configMaps: Map<string, IConfigMap>, where: string, out: string[]) {
  const env = new Map<string, string | undefined>();
  for (const source of container.envFrom ?? []) {
    const name = source.configMapRef?.name;
    if (!name) continue;
    const cm = configMaps.get(name);
    if (!cm) out.push(say('envFromMissingConfigMap', { where, name }));
    for (const [k, v] of Object.entries(cm?.data ?? {})) env.set(k, v);
  }
  for (const e of container.env ?? []) env.set(e.name, e.value);
  return env;
}

/** Where a variable that is not a plain value comes from, for messages. */
function envSource(from: IEnvVarSource): string {
  if (from.configMapKeyRef) return `ConfigMap ${from.configMapKeyRef.name} key ${from.configMapKeyRef.key}`;
  if (from.fieldRef) return `field ${from.fieldRef.fieldPath}`;
  if (from.resourceFieldRef) return `resource ${from.resourceFieldRef.resource}`;
  return 'no Secret';
}

const isSecretVolume = (v: IVolume | undefined) =>
  !!v && (!!v.secret || (!!v.projected?.sources?.length && v.projected.sources.every((s) => s.secret)));

/** Secret variables of a container set otherwise than from a Secret; `env` (containerEnv) gives the paths set. */
function secretEnvViolations(
  where: string,
  container: IContainer,
  env: Map<string, string | undefined>,
  volumes: Map<string, IVolume>,
): string[] {
  const out: string[] = [];
  for (const e of container.env ?? []) {
    if (secretKind(e.name) !== 'value') continue;
    if (e.valueFrom?.secretKeyRef) continue;
    out.push(
      e.valueFrom
        ? say('secretFromElsewhere', { where, name: e.name, source: envSource(e.valueFrom) })
        : say('secretLiteral', { where, name: e.name }),
    );
  }
  for (const [name, path] of env) {
    if (secretKind(name) !== 'path' || path === undefined) continue;
    const onSecret = (container.volumeMounts ?? []).some((m) => {
      const dir = m.mountPath.replace(/\/+$/, '');
      return (path === dir || path.startsWith(`${dir}/`)) && isSecretVolume(volumes.get(m.name));
    });
    if (!onSecret) out.push(say('secretPathOffSecretVolume', { where, name, path }));
  }
  return out;
}

/** Secret variables (SECRET_ENV) kept in a ConfigMap, or set in a container otherwise than from a Secret. */
export function secretViolations(objects: KubeObject[]): string[] {
  const out: string[] = [];
  const configMaps = new Map(of<IConfigMap>(objects, 'ConfigMap').map((cm) => [cm.metadata.name, cm]));
  for (const cm of configMaps.values()) {
    for (const key of [...Object.keys(cm.data ?? {}), ...Object.keys(cm.binaryData ?? {})]) {
      if (secretKind(key) === 'value') {
        out.push(say('secretInConfigMap', { object: id(cm), key }));
      }
    }
  }
  for (const w of [...of<Workload>(objects, 'Deployment'), ...of<Workload>(objects, 'StatefulSet')]) {
    const spec = w.spec?.template.spec;
    const volumes = new Map((spec?.volumes ?? []).map((v) => [v.name, v]));
    for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
      const where = `${id(w)} container ${c.name}`;
      out.push(...secretEnvViolations(where, c, containerEnv(c, configMaps, where, []), volumes));
    }
  }
  return out;
}

function probeViolations(
  where: string,
  container: IContainer,
  kind: 'livenessProbe' | 'readinessProbe',
  expected?: { path: string; port: number },
): string[] {
  const probe: IProbe | undefined = container[kind];
  if (!probe) return [say('noProbe', { where, kind })];
  if (!expected) return [];
  const http = probe.httpGet;
  const port =
    typeof http?.port === 'string' ? container.ports?.find((p) => p.name === http.port)?.containerPort : http?.port;
  if (http?.path !== expected.path || port !== expected.port) {
    return [say('probeOffHealthRoute', { where, kind, path: expected.path, port: expected.port })];
  }
  return [];
}

function imageViolation(where: string, image: string | undefined): string[] {
  if (!image) return [say('noImage', { where })];
  if (image.includes('@sha256:')) return [];
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const tag = lastSegment.includes(':') ? lastSegment.slice(lastSegment.indexOf(':') + 1) : '';
  if (!tag) return [say('imageUntagged', { where, image })];
  if (tag === 'latest') return [say('imageLatest', { where, image })];
  return [];
}

function workloadViolations(w: Workload, configMaps: Map<string, IConfigMap>): string[] {
  const out: string[] = [];
  const spec: IPodSpec | undefined = w.spec?.template.spec;
  if (!spec) return [say('noPodSpec', { object: id(w) })];
  const deployable = (DEPLOYABLES as readonly string[]).includes(w.metadata.name)
    ? (w.metadata.name as Deployable)
    : undefined;
  if (spec.automountServiceAccountToken !== false) out.push(say('automountToken', { object: id(w) }));
  if (spec.securityContext?.runAsNonRoot !== true) out.push(say('podRunAsRoot', { object: id(w) }));

  const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  for (const v of spec.volumes ?? []) {
    if (v.emptyDir && !v.emptyDir.sizeLimit) out.push(say('emptyDirUnbounded', { object: id(w), volume: v.name }));
    if (v.configMap && !configMaps.has(v.configMap.name ?? '')) {
      out.push(say('volumeMissingConfigMap', { object: id(w), volume: v.name, name: v.configMap.name ?? '' }));
    }
  }

  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const where = `${id(w)} container ${c.name}`;
    for (const bound of ['requests', 'limits'] as const) {
      for (const resource of ['cpu', 'memory']) {
        if (c.resources?.[bound]?.[resource] === undefined) out.push(say('noResource', { where, bound, resource }));
      }
    }
    const env = containerEnv(c, configMaps, where, out);
    let health: { port: number } | undefined;
    if (deployable) {
      const { port, variable } = HEALTH_PORTS[deployable];
      health = { port: Number(env.get(variable) ?? port) };
      for (const name of env.keys()) {
        if (!configEnv[deployable].has(name)) {
          out.push(say('unreadVariable', { where, name, deployable }));
        }
      }
      const scratch = env.get('SCRATCH_DIR');
      if (scratch) {
        const mount = c.volumeMounts?.find((m) => m.mountPath === scratch);
        const volume = mount && volumes.get(mount.name);
        if (!volume?.emptyDir?.sizeLimit) {
          out.push(say('scratchNotBounded', { where, path: scratch }));
        }
      }
    }
    out.push(...probeViolations(where, c, 'livenessProbe', health && { path: '/healthz', port: health.port }));
    out.push(...probeViolations(where, c, 'readinessProbe', health && { path: '/readyz', port: health.port }));

    const sc = c.securityContext;
    if ((sc?.runAsNonRoot ?? spec.securityContext?.runAsNonRoot) !== true) {
      out.push(say('containerRunAsRoot', { where }));
    }
    if (sc?.readOnlyRootFilesystem !== true) out.push(say('writableRootFilesystem', { where }));
    if (sc?.allowPrivilegeEscalation !== false) {
      out.push(say('privilegeEscalation', { where }));
    }
    if (!sc?.capabilities?.drop?.includes('ALL')) out.push(say('capabilitiesKept', { where }));
    out.push(...imageViolation(where, c.image));
  }
  return out;
}

/** The lowest replica count a Deployment or StatefulSet runs with, counting the autoscalers that own it. */
function minReplicas(w: Workload, hpas: IHorizontalPodAutoscaler[], scaled: IScaledObject[]): number {
  const hpa = hpas.find(
    (h) => h.spec?.scaleTargetRef.kind === w.kind && h.spec.scaleTargetRef.name === w.metadata.name,
  );
  if (hpa) return hpa.spec?.minReplicas ?? 1;
  const so = scaled.find(
    (s) => (s.spec.scaleTargetRef.kind ?? 'Deployment') === w.kind && s.spec.scaleTargetRef.name === w.metadata.name,
  );
  if (so) return so.spec.minReplicaCount ?? 0;
  return w.spec?.replicas ?? 1;
}

function peerNames(peer: INetworkPolicyPeer, pods: Map<string, Record<string, string>>): string[] {
  if (peer.ipBlock) return [`ip:${peer.ipBlock.cidr}`];
  if (peer.namespaceSelector) {
    return [`namespace:${peer.namespaceSelector.matchLabels?.['kubernetes.io/metadata.name'] ?? '*'}`];
  }
  if (peer.podSelector?.matchExpressions?.length) return ['pods:matchExpressions'];
  return [...pods].filter(([, labels]) => matches(peer.podSelector?.matchLabels, labels)).map(([name]) => name);
}

function networkViolations(objects: KubeObject[], workloads: Workload[]): string[] {
  const out: string[] = [];
  const policies = of<INetworkPolicy>(objects, 'NetworkPolicy');
  const pods = new Map(workloads.map((w) => [w.metadata.name, w.spec?.template.metadata?.labels ?? {}]));
  const hasDefaultDeny = policies.some(
    (p) =>
      Object.keys(p.spec?.podSelector.matchLabels ?? {}).length === 0 &&
      !p.spec?.podSelector.matchExpressions?.length &&
      (['Ingress', 'Egress'] as const).every((t) => p.spec?.policyTypes?.includes(t)) &&
      !p.spec?.ingress?.length &&
      !p.spec?.egress?.length,
  );
  if (!hasDefaultDeny) out.push(say('noDefaultDeny', {}));

  for (const [pod, labels] of pods) {
    const selecting = policies.filter((p) => matches(p.spec?.podSelector.matchLabels, labels));
    const ingress = new Set<string>();
    const egress = new Set<string>();
    if (!selecting.some((p) => p.spec?.policyTypes?.includes('Ingress'))) ingress.add('anywhere');
    if (!selecting.some((p) => p.spec?.policyTypes?.includes('Egress'))) egress.add('anywhere:*');
    for (const p of selecting) {
      for (const rule of p.spec?.ingress ?? []) {
        const from = rule.from?.length ? rule.from.flatMap((peer) => peerNames(peer, pods)) : ['anywhere'];
        for (const source of from) ingress.add(source);
      }
      for (const rule of p.spec?.egress ?? []) {
        const to = rule.to?.length ? rule.to.flatMap((peer) => peerNames(peer, pods)) : ['anywhere'];
        const ports = rule.ports?.length ? rule.ports.map((port) => String(port.port ?? '*')) : ['*'];
        for (const peer of to) for (const port of ports) egress.add(`${peer}:${port}`);
      }
    }
    const allowedIn = new Set([...(ALLOWED_INGRESS[pod] ?? []), ...ALLOWED_INGRESS_EVERYWHERE]);
    const allowedOut = new Set([...(ALLOWED_EGRESS[pod] ?? []), ...ALLOWED_EGRESS_EVERYWHERE]);
    for (const source of ingress) if (!allowedIn.has(source)) out.push(say('ingressTooOpen', { pod, peer: source }));
    for (const source of ALLOWED_INGRESS[pod] ?? []) {
      if (!ingress.has(source)) out.push(say('ingressTooClosed', { pod, peer: source }));
    }
    for (const target of egress) if (!allowedOut.has(target)) out.push(say('egressTooOpen', { pod, peer: target }));
    for (const target of allowedOut) {
      if (!egress.has(target)) out.push(say('egressTooClosed', { pod, peer: target }));
    }
  }
  return out;
}

/**
 * The ports of a pod that NetworkPolicies open to pods of another namespace (by kubernetes.io/metadata.name);
 * `*` when a rule names no ports, or when no policy restricts the pod's ingress at all.
 */
function portsOpenTo(w: Workload, namespace: string, policies: INetworkPolicy[]): Set<number | '*'> {
  const labels = w.spec?.template.metadata?.labels;
  const containerPorts = (w.spec?.template.spec?.containers ?? []).flatMap((c) => c.ports ?? []);
  const selecting = policies.filter((p) => matches(p.spec?.podSelector.matchLabels, labels));
  if (!selecting.some((p) => p.spec?.policyTypes?.includes('Ingress'))) return new Set(['*']);
  const open = new Set<number | '*'>();
  for (const rule of selecting.flatMap((p) => p.spec?.ingress ?? [])) {
    const admits =
      !rule.from?.length ||
      rule.from.some(
        (peer) =>
          peer.namespaceSelector &&
          !peer.ipBlock &&
          [undefined, namespace].includes(peer.namespaceSelector.matchLabels?.['kubernetes.io/metadata.name']),
      );
    if (!admits) continue;
    if (!rule.ports?.length) open.add('*');
    for (const { port } of rule.ports ?? []) {
      if (port === undefined) open.add('*');
      else if (typeof port === 'number') open.add(port);
      else {
        const named = containerPorts.find((p) => p.name === port)?.containerPort;
        if (named !== undefined) open.add(named);
      }
    }
  }
  return open;
}

/**
 * Prometheus scrapes each deployable's /metrics where it is served, and the gateway serves it on a listener of its
 * own (METRICS_PORT): its public port is what the ingress routes to, so /metrics there would be public.
 */
function metricsViolations(workloads: Workload[], configMaps: Map<string, IConfigMap>, policies: INetworkPolicy[]) {
  const out: string[] = [];
  for (const w of workloads) {
    const deployable = DEPLOYABLES.find((d) => d === w.metadata.name);
    const container = w.spec?.template.spec?.containers[0];
    if (!deployable || !container) continue;
    const env = containerEnv(container, configMaps, id(w), []);
    const { port: defaultPort, variable } = HEALTH_PORTS[deployable];
    const healthPort = Number(env.get(variable) ?? defaultPort);
    let metricsPort = healthPort;
    if (deployable === 'gateway') {
      const configured = env.get('METRICS_PORT');
      metricsPort = Number(configured);
      if (configured === undefined || !Number.isInteger(metricsPort) || metricsPort <= 0) {
        out.push(say('noMetricsPort', { object: id(w), port: healthPort }));
        continue;
      }
      if (metricsPort === healthPort) {
        out.push(say('metricsOnPublicPort', { object: id(w), port: metricsPort }));
        continue;
      }
      if (!container.ports?.some((p) => p.containerPort === metricsPort)) {
        out.push(say('metricsPortNotExposed', { object: id(w), port: metricsPort }));
      }
    }
    const annotations = w.spec?.template.metadata?.annotations ?? {};
    if (annotations['prometheus.io/scrape'] === 'true' && annotations['prometheus.io/port'] !== String(metricsPort)) {
      out.push(
        say('scrapePortWrong', {
          object: id(w),
          annotated: annotations['prometheus.io/port'] ?? '(unset)',
          port: metricsPort,
        }),
      );
    }
    const open = portsOpenTo(w, 'monitoring', policies);
    if (!open.has('*') && !open.has(metricsPort)) {
      out.push(say('prometheusBlocked', { pod: w.metadata.name, port: metricsPort }));
    }
  }
  return out;
}

/** `2100m` → bytes; `0` means no limit. */
function nginxSize(value: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(value.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  if (n === 0) return Infinity;
  const unit = (m[2] ?? '').toLowerCase();
  return n * (unit === 'g' ? GiB : unit === 'm' ? 1024 ** 2 : unit === 'k' ? 1024 : 1);
}

function ingressViolations(ingresses: IIngress[], maxUploadBytes: number): string[] {
  const out: string[] = [];
  if (ingresses.length === 0) out.push(say('noIngress', {}));
  for (const ing of ingresses as (IIngress & KubeObject)[]) {
    const a = ing.metadata.annotations ?? {};
    const get = (name: string) => a[INGRESS_ANNOTATIONS + name];
    const body = get('proxy-body-size');
    if (!body || !(nginxSize(body) >= maxUploadBytes)) {
      out.push(say('bodySizeTooSmall', { object: id(ing), size: body ?? '(unset)', max: maxUploadBytes }));
    }
    if (get('proxy-request-buffering') !== 'off') out.push(say('uploadsBuffered', { object: id(ing) }));
    for (const t of ['proxy-read-timeout', 'proxy-send-timeout']) {
      if (!(Number(get(t)) >= 3600))
        out.push(say('proxyTimeoutShort', { object: id(ing), annotation: t, value: get(t) ?? '(unset)' }));
    }
    for (const rule of ing.spec?.rules ?? []) {
      for (const path of rule.http?.paths ?? []) {
        const service = path.backend.service?.name;
        if (service !== 'gateway')
          out.push(
            say('routesElsewhere', {
              object: id(ing),
              path: path.path ?? '/',
              backend: service ?? 'a non-service backend',
            }),
          );
      }
    }
  }
  return out;
}

export function checkPolicies(objects: KubeObject[], options: PolicyOptions): string[] {
  const out: string[] = [];
  const configMaps = new Map(of<IConfigMap>(objects, 'ConfigMap').map((cm) => [cm.metadata.name, cm]));
  const workloads = [...of<Workload>(objects, 'Deployment'), ...of<Workload>(objects, 'StatefulSet')];
  const hpas = of<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler');
  const scaled = of<IScaledObject>(objects, 'ScaledObject');
  const pdbs = of<IPodDisruptionBudget>(objects, 'PodDisruptionBudget');

  for (const name of DEPLOYABLES) {
    if (!workloads.some((w) => w.kind === 'Deployment' && w.metadata.name === name))
      out.push(say('deploymentMissing', { name }));
  }
  for (const w of workloads) {
    out.push(...workloadViolations(w, configMaps));
    const min = minReplicas(w, hpas, scaled);
    const labels = w.spec?.template.metadata?.labels;
    if (min > 1 && !pdbs.some((p) => p.spec?.selector && matches(p.spec.selector.matchLabels, labels))) {
      out.push(say('noDisruptionBudget', { object: id(w), replicas: min }));
    }
  }

  for (const s of of<KubeObject>(objects, 'Secret')) {
    if (s.data !== undefined || s.stringData !== undefined) {
      out.push(say('secretCommitted', { object: id(s) }));
    }
  }
  out.push(...secretViolations(objects));

  out.push(...networkViolations(objects, workloads));
  const policies = of<INetworkPolicy>(objects, 'NetworkPolicy');
  out.push(...metricsViolations(workloads, configMaps, policies));
  // The in-cluster RabbitMQ (dev) must let KEDA's operator read the queue length.
  for (const rabbitmq of workloads.filter((w) => w.metadata.name === 'rabbitmq')) {
    const open = portsOpenTo(rabbitmq, 'keda', policies);
    if (!open.has('*') && !open.has(RABBITMQ_MANAGEMENT_PORT)) {
      out.push(say('kedaBlocked', { port: RABBITMQ_MANAGEMENT_PORT }));
    }
  }

  if (!hpas.some((h) => h.spec?.scaleTargetRef.kind === 'Deployment' && h.spec.scaleTargetRef.name === 'gateway')) {
    out.push(say('noGatewayAutoscaler', {}));
  }

  const triggerAuths = new Set(of<KubeObject>(objects, 'TriggerAuthentication').map((t) => t.metadata.name));
  const workerScalers = scaled.filter(
    (s) => (s.spec.scaleTargetRef.kind ?? 'Deployment') === 'Deployment' && s.spec.scaleTargetRef.name === 'converter',
  );
  if (options.requireKeda && workerScalers.length === 0) out.push(say('noWorkerScaler', {}));
  for (const s of scaled) {
    if (!workerScalers.includes(s))
      out.push(say('scalerTargetsOther', { object: id(s), target: s.spec.scaleTargetRef.name }));
    for (const t of s.spec.triggers) {
      const queue = t.metadata.queueName;
      if (t.type !== 'rabbitmq' || queue !== Topology.conversionsQueue) {
        out.push(
          say('triggerWrongQueue', {
            object: id(s),
            type: t.type,
            queue: queue ?? '(no queue)',
            workQueue: Topology.conversionsQueue,
          }),
        );
      }
      if (t.metadata.protocol !== 'http' || t.metadata.mode !== 'QueueLength') {
        out.push(say('triggerCountsWaitingOnly', { object: id(s) }));
      }
      // The management API's address carries its credentials: it comes from a Secret, through a TriggerAuthentication.
      const auth = t.authenticationRef?.name;
      if (!auth) out.push(say('triggerUnauthenticated', { object: id(s) }));
      else if (!triggerAuths.has(auth)) out.push(say('triggerAuthMissing', { object: id(s), name: auth }));
    }
  }

  const gatewayConfig = [...configMaps.values()].find((cm) => cm.metadata?.name?.startsWith('gateway-config'));
  out.push(
    ...ingressViolations(of<IIngress>(objects, 'Ingress'), Number(gatewayConfig?.data?.MAX_UPLOAD_BYTES ?? 2 * GiB)),
  );

  // Long requests and jobs: after SIGTERM (and the preStop sleep) each gets SHUTDOWN_GRACE_SECONDS, and main.ts 5 s
  // more to close; the pod's terminationGracePeriodSeconds must cover all of it, or the kubelet kills it mid-way.
  for (const name of LONG_SHUTDOWN_SERVICES) {
    const deployment = workloads.find((w) => w.kind === 'Deployment' && w.metadata.name === name);
    const container = deployment?.spec?.template.spec?.containers[0];
    if (!deployment || !container) continue;
    const env = containerEnv(container, configMaps, id(deployment), []);
    const graceSetting = env.get('SHUTDOWN_GRACE_SECONDS');
    if (graceSetting === undefined) {
      out.push(say('graceUnset', { object: id(deployment) }));
      continue;
    }
    const grace = Number(graceSetting);
    const command = container.lifecycle?.preStop?.exec?.command ?? [];
    const preStop = command[0] === 'sleep' ? Number(command[1] ?? 0) : 0;
    const termination = deployment.spec?.template.spec?.terminationGracePeriodSeconds ?? 30;
    const needed = preStop + grace + 5;
    if (termination < needed) {
      out.push(say('terminationTooShort', { object: id(deployment), termination, preStop, grace, needed }));
    }
    if (name === 'converter') {
      const longest = Number(env.get('CONVERSION_TIMEOUT_SECONDS') ?? 1200);
      if (grace < longest) {
        out.push(say('graceBelowConversion', { object: id(deployment), grace, longest }));
      }
    }
  }
  return out;
}
