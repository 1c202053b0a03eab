import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IIngress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkPolicies, POLICY_MESSAGES, secretViolations, type PolicyMessage } from './policy.js';
import { K8S_DIR, KUBECTL, OVERLAYS, parseYamlStream, renderOverlay, type Overlay } from './render.js';
import { validateObject, type KubeObject } from './validate.js';

const rendered = new Map<Overlay, KubeObject[]>();

beforeAll(async () => {
  for (const overlay of OVERLAYS) rendered.set(overlay, await renderOverlay(overlay));
});

const objectsOf = (overlay: Overlay) => structuredClone(rendered.get(overlay)!);
const find = <T>(objects: KubeObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as unknown as T & KubeObject;
const containerOf = (objects: KubeObject[], name: string): IContainer =>
  find<IDeployment>(objects, 'Deployment', name).spec!.template.spec!.containers[0]!;

/** The Secrets k8s/create-secrets.sh would create, without a cluster. */
async function createdSecrets(overlay: Overlay, namespace?: string): Promise<KubeObject[]> {
  const external = {
    USERS_MYSQL_URL: 'mysql://vidmp3_users:pw@mysql.example:3306/vidmp3_users',
    MEDIA_MYSQL_URL: 'mysql://vidmp3_media:pw@mysql.example:3306/vidmp3_media',
    JOBS_MYSQL_URL: 'mysql://vidmp3_jobs:pw@mysql.example:3306/vidmp3_jobs',
    NOTIFIER_MYSQL_URL: 'mysql://vidmp3_notifier:pw@mysql.example:3306/vidmp3_notifier',
    MONGODB_URL: 'mongodb://vidmp3_media:pw@mongo.example:27017/vidmp3_media',
    RABBITMQ_URL: 'amqp://vidmp3:pw@rabbitmq.example:5672',
    RABBITMQ_MANAGEMENT_URL: 'https://vidmp3:pw@rabbitmq.example:15671/%2F',
    SMTP_URL: 'smtp://vidmp3:pw@smtp.example:587',
  };
  const args = namespace ? [overlay, namespace] : [overlay];
  const { stdout } = await promisify(execFile)(`${K8S_DIR}create-secrets.sh`, args, {
    env: { ...process.env, ...(overlay === 'prod' ? external : {}), DRY_RUN: '1', KUBECTL, CLUSTER_DOMAIN: '' },
  });
  return parseYamlStream(stdout);
}

describe.each(OVERLAYS)('the %s overlay', (overlay) => {
  it('renders with kustomize into objects that are valid against the Kubernetes schemas', () => {
    const objects = objectsOf(overlay);
    expect(objects.length).toBeGreaterThan(20);
    expect(objects.flatMap(validateObject)).toEqual([]);
  });

  it('meets every deployment policy', () => {
    expect(checkPolicies(objectsOf(overlay), { requireKeda: overlay === 'prod' })).toEqual([]);
  });

  it('takes every secret variable from a Secret, never from a literal value or a ConfigMap', () => {
    expect(secretViolations(objectsOf(overlay))).toEqual([]);
  });

  it('references only Secrets and keys that k8s/create-secrets.sh creates, and commits none', async () => {
    const objects = objectsOf(overlay);
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    const created = new Map(
      (await createdSecrets(overlay)).map((s) => [s.metadata.name, Object.keys(s.data as Record<string, string>)]),
    );
    const referenced = new Set<string>();
    for (const o of objects) {
      const walk = (value: unknown): void => {
        if (Array.isArray(value)) return value.forEach(walk);
        if (typeof value !== 'object' || value === null) return;
        const v = value as Record<string, unknown>;
        const ref = (v.secretKeyRef ?? undefined) as { name: string; key: string; optional?: boolean } | undefined;
        if (ref && !ref.optional) referenced.add(`${ref.name}/${ref.key}`);
        Object.values(v).forEach(walk);
      };
      walk(o.spec);
      if (o.kind === 'TriggerAuthentication') {
        const targets = (o.spec as { secretTargetRef: { name: string; key: string }[] }).secretTargetRef;
        for (const t of targets) referenced.add(`${t.name}/${t.key}`);
      }
    }
    expect(referenced.size).toBeGreaterThan(5);
    const missing = [...referenced].filter((ref) => {
      const [name, key] = ref.split('/') as [string, string];
      return !created.get(name)?.includes(key);
    });
    expect(missing).toEqual([]);
  });
});

describe('k8s/create-secrets.sh dev', () => {
  const kedaHost = async (namespace?: string) => {
    const secret = (await createdSecrets('dev', namespace)).find((s) => s.metadata.name === 'vidmp3-keda-rabbitmq');
    return Buffer.from((secret?.data as { host: string }).host, 'base64').toString();
  };

  it("gives KEDA RabbitMQ's management API by its cluster-wide name (KEDA runs in namespace keda)", async () => {
    expect(await kedaHost()).toMatch(
      /^http:\/\/vidmp3:[0-9a-f]+@rabbitmq\.vidmp3-dev\.svc\.cluster\.local:15672\/%2F$/,
    );
    expect(await kedaHost('team-a')).toMatch(/@rabbitmq\.team-a\.svc\.cluster\.local:15672\/%2F$/);
  });
});

describe('schema validation', () => {
  it('rejects a misspelled field that the OpenAPI schemas alone would let through', () => {
    const objects = objectsOf('prod');
    const gateway = containerOf(objects, 'gateway') as IContainer & { readinesProbe?: unknown };
    gateway.readinesProbe = gateway.readinessProbe;
    delete gateway.readinessProbe;

    expect(validateObject(find(objects, 'Deployment', 'gateway'))).toEqual([
      'Deployment/gateway: unknown field .spec.template.spec.containers[0].readinesProbe',
    ]);
  });

  it('rejects kinds it has no schema for', () => {
    const stray: KubeObject = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } };
    expect(validateObject(stray)).toEqual(['Widget/w: unknown kind example.com/v1/Widget']);
  });
});

describe('the policy checks', () => {
  const violations = (objects: KubeObject[]) => checkPolicies(objects, { requireKeda: true });

  it('report a pod and a container that may run as root', () => {
    const objects = objectsOf('prod');
    const users = find<IDeployment>(objects, 'Deployment', 'users').spec!.template.spec!;
    delete users.securityContext!.runAsNonRoot;
    expect(violations(objects)).toEqual(['Deployment/users: pod securityContext.runAsNonRoot is not true']);
    delete users.containers[0]!.securityContext!.runAsNonRoot;
    expect(violations(objects)).toEqual([
      'Deployment/users: pod securityContext.runAsNonRoot is not true',
      'Deployment/users container users: runs without runAsNonRoot',
    ]);
  });

  it('report a liveness probe off the health route, a latest image and a committed Secret', () => {
    const objects = objectsOf('dev');
    const jobs = containerOf(objects, 'jobs');
    jobs.livenessProbe!.httpGet!.path = '/graphql';
    jobs.image = 'vidmp3/jobs:latest';
    objects.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'leaked' }, data: { MYSQL_URL: 'eA==' } });
    expect(checkPolicies(objects, { requireKeda: false })).toEqual([
      'Deployment/jobs container jobs: livenessProbe is not GET /healthz on port 4003',
      'Deployment/jobs container jobs: image vidmp3/jobs:latest uses the latest tag',
      'Secret/leaked: has data committed; secrets are created in the cluster (docs/DEPLOY.md), only referenced here',
    ]);
  });

  it('report a worker allowed to reach the users service, and a grace period shorter than a conversion', () => {
    const objects = objectsOf('prod');
    const policy = find<INetworkPolicy>(objects, 'NetworkPolicy', 'converter');
    policy.spec!.egress!.push({
      to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'users' } } }],
      ports: [{ protocol: 'TCP', port: 4001 }],
    });
    find<IDeployment>(objects, 'Deployment', 'converter').spec!.template.spec!.terminationGracePeriodSeconds = 30;
    expect(violations(objects)).toEqual([
      'NetworkPolicy: converter may connect to users:4001',
      'Deployment/converter: terminationGracePeriodSeconds 30 < preStop 0 + SHUTDOWN_GRACE_SECONDS 1500 + 5 (1505)',
    ]);
  });

  it('report a notifier cut off from users or its mail server, open to any port, or without its Deployment', () => {
    const objects = objectsOf('prod');
    unpeer(objects, 'users', 'ingress', 'notifier');
    const egress = find<INetworkPolicy>(objects, 'NetworkPolicy', 'notifier').spec!.egress!;
    const external = egress.find((rule) => !rule.to)!;
    external.ports = external.ports!.filter((port) => port.port !== 587);
    egress.push({ ports: [{ protocol: 'TCP', port: 25 }] });
    expect(violations(objects)).toEqual([
      'NetworkPolicy: notifier may connect to anywhere:25',
      'NetworkPolicy: notifier cannot connect to anywhere:587',
      'NetworkPolicy: users does not accept ingress from notifier',
    ]);
    const withoutNotifier = objectsOf('dev').filter(
      (o) => !(o.kind === 'Deployment' && o.metadata.name === 'notifier'),
    );
    expect(checkPolicies(withoutNotifier, { requireKeda: false })).toContain('Deployment/notifier: missing');
  });

  it('report a media pod killed before its uploads may finish, and a gateway with no shutdown grace set', () => {
    const objects = objectsOf('prod');
    find<IDeployment>(objects, 'Deployment', 'media').spec!.template.spec!.terminationGracePeriodSeconds = 60;
    const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('gateway-config'))!;
    delete (config.data as Record<string, string>).SHUTDOWN_GRACE_SECONDS;
    expect(violations(objects)).toEqual([
      'Deployment/gateway: SHUTDOWN_GRACE_SECONDS is not set; requests in flight are cut after the default',
      'Deployment/media: terminationGracePeriodSeconds 60 < preStop 5 + SHUTDOWN_GRACE_SECONDS 110 + 5 (120)',
    ]);
  });

  it('report a gateway serving /metrics on its public port, and Prometheus pointed at the wrong port', () => {
    const objects = objectsOf('prod');
    const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('gateway-config'))!;
    const data = config.data as Record<string, string>;
    expect(data.METRICS_PORT).toBe('9464');

    delete data.METRICS_PORT;
    expect(violations(objects)).toEqual([
      'Deployment/gateway: no METRICS_PORT, so /metrics is served on the public port 4000',
    ]);
    data.METRICS_PORT = data.PORT!;
    expect(violations(objects)).toEqual([
      'Deployment/gateway: METRICS_PORT 4000 is the public port, so /metrics is public',
    ]);

    data.METRICS_PORT = '9464';
    const gateway = find<IDeployment>(objects, 'Deployment', 'gateway').spec!.template;
    gateway.metadata!.annotations!['prometheus.io/port'] = '4000';
    const prometheus = find<INetworkPolicy>(objects, 'NetworkPolicy', 'allow-prometheus');
    prometheus.spec!.ingress![0]!.ports = prometheus.spec!.ingress![0]!.ports!.filter((p) => p.port !== 9464);
    expect(violations(objects)).toEqual([
      'Deployment/gateway: prometheus.io/port 4000 is not its metrics port 9464',
      'NetworkPolicy: Prometheus (namespace monitoring) cannot reach gateway:9464',
    ]);
  });

  it("report an in-cluster RabbitMQ whose management port KEDA's operator cannot reach", () => {
    const objects = objectsOf('dev');
    const rabbitmq = find<INetworkPolicy>(objects, 'NetworkPolicy', 'rabbitmq');
    const keda = rabbitmq.spec!.ingress!.find((r) =>
      r.from?.some((p) => p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'keda'),
    )!;
    expect(keda.ports).toEqual([{ protocol: 'TCP', port: 15672 }]);

    keda.ports = [{ protocol: 'TCP', port: 5672 }];
    expect(checkPolicies(objects, { requireKeda: false })).toEqual([
      'NetworkPolicy: KEDA (namespace keda) cannot reach rabbitmq:15672',
    ]);
    rabbitmq.spec!.ingress = rabbitmq.spec!.ingress!.filter((r) => r !== keda);
    expect(checkPolicies(objects, { requireKeda: false })).toEqual([
      'NetworkPolicy: rabbitmq does not accept ingress from namespace:keda',
      'NetworkPolicy: KEDA (namespace keda) cannot reach rabbitmq:15672',
    ]);
  });

  it('report a database URL and a data-service password written into a container as literal values', () => {
    const objects = objectsOf('dev');
    const users = containerOf(objects, 'users');
    users.env = users.env!.map((e) =>
      e.name === 'MYSQL_URL' ? { name: e.name, value: 'mysql://vidmp3_users:hunter2@mysql:3306/vidmp3_users' } : e,
    );
    const rabbitmq = find<IStatefulSet>(objects, 'StatefulSet', 'rabbitmq').spec!.template.spec!.containers[0]!;
    rabbitmq.env = rabbitmq.env!.map((e) => (e.name === 'RABBITMQ_DEFAULT_PASS' ? { name: e.name, value: 'x' } : e));
    expect(checkPolicies(objects, { requireKeda: false })).toEqual([
      'Deployment/users container users: sets the secret MYSQL_URL as a literal value; take it from a Secret (valueFrom.secretKeyRef)',
      'StatefulSet/rabbitmq container rabbitmq: sets the secret RABBITMQ_DEFAULT_PASS as a literal value; take it from a Secret (valueFrom.secretKeyRef)',
    ]);
  });

  it('accept secrets from envFrom.secretRef and a key file on a mounted Secret volume, and report one elsewhere', () => {
    const objects = objectsOf('prod');
    const pod = find<IDeployment>(objects, 'Deployment', 'media').spec!.template.spec!;
    const media = pod.containers[0]!;
    media.env = media.env!.filter((e) => e.name !== 'DOWNLOAD_SIGNING_KEY');
    media.envFrom!.push({ secretRef: { name: 'vidmp3-media' } });
    media.env.push({ name: 'DOWNLOAD_KEY_FILE', value: '/etc/vidmp3/download/signing.key' });
    pod.volumes!.push({ name: 'download-key', secret: { secretName: 'vidmp3-media-download' } });
    media.volumeMounts!.push({ name: 'download-key', mountPath: '/etc/vidmp3/download', readOnly: true });
    expect(violations(objects)).toEqual([]);

    media.env.find((e) => e.name === 'DOWNLOAD_KEY_FILE')!.value = '/tmp/signing.key';
    expect(violations(objects)).toEqual([
      'Deployment/media container media: DOWNLOAD_KEY_FILE /tmp/signing.key is not on a mounted Secret volume',
    ]);
  });
});

/** A change to a real render that breaks exactly one policy, and the one sentence the checks must answer it with. */
interface Mutation {
  overlay: Overlay;
  mutate: (objects: KubeObject[]) => void;
  expected: string;
}

const podOf = (objects: KubeObject[], name: string, kind = 'Deployment'): IPodSpec =>
  find<IDeployment>(objects, kind, name).spec!.template.spec!;
const configOf = (objects: KubeObject[], name: string) =>
  objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith(`${name}-config`))! as KubeObject &
    IConfigMap & { data: Record<string, string> };
const without = (objects: KubeObject[], kind: string, name: string) =>
  objects.splice(objects.indexOf(find(objects, kind, name)), 1);
const ingressOf = (objects: KubeObject[]) => find<IIngress>(objects, 'Ingress', 'vidmp3');
const annotate = (objects: KubeObject[], name: string, value: string) => {
  ingressOf(objects).metadata.annotations![`nginx.ingress.kubernetes.io/${name}`] = value;
};
type Trigger = { type: string; metadata: Record<string, string>; authenticationRef?: { name: string } };
const scalerOf = (objects: KubeObject[]) =>
  find<{ spec: { scaleTargetRef: { name: string }; triggers: Trigger[] } }>(objects, 'ScaledObject', 'converter');
/** Takes the pods named `peer` out of a NetworkPolicy's rules in one direction (a rule left with no peer goes). */
function unpeer(objects: KubeObject[], policy: string, direction: 'ingress' | 'egress', peer: string) {
  const spec = find<INetworkPolicy>(objects, 'NetworkPolicy', policy).spec!;
  const side = direction === 'ingress' ? 'from' : 'to';
  const rules = (spec[direction] ?? []) as { from?: unknown[]; to?: unknown[] }[];
  const names = (p: unknown) =>
    (p as INetworkPolicy['spec'] & object).podSelector?.matchLabels?.['app.kubernetes.io/name'];
  spec[direction] = rules
    .map((r) => ({ ...r, [side]: r[side]?.filter((p) => names(p) !== peer) }))
    .filter((r) => r[side] === undefined || r[side].length > 0) as never;
}

/** One row per sentence in POLICY_MESSAGES (the test below fails on a sentence without a row). */
const MUTATIONS: Record<PolicyMessage, Mutation> = {
  deploymentMissing: {
    overlay: 'prod',
    mutate: (o) => void (find(o, 'Deployment', 'users').kind = 'StatefulSet'),
    expected: 'Deployment/users: missing',
  },
  noPodSpec: {
    overlay: 'dev',
    mutate: (o) =>
      void delete (find<IStatefulSet>(o, 'StatefulSet', 'mongodb').spec!.template as { spec?: unknown }).spec,
    expected: 'StatefulSet/mongodb: no pod template',
  },
  automountToken: {
    overlay: 'prod',
    mutate: (o) => void (podOf(o, 'users').automountServiceAccountToken = true),
    expected: 'Deployment/users: automountServiceAccountToken is not false',
  },
  podRunAsRoot: {
    overlay: 'prod',
    mutate: (o) => void delete podOf(o, 'users').securityContext!.runAsNonRoot,
    expected: 'Deployment/users: pod securityContext.runAsNonRoot is not true',
  },
  emptyDirUnbounded: {
    overlay: 'prod',
    mutate: (o) => void delete podOf(o, 'gateway').volumes!.find((v) => v.name === 'tmp')!.emptyDir!.sizeLimit,
    expected: 'Deployment/gateway: emptyDir volume tmp has no sizeLimit',
  },
  volumeMissingConfigMap: {
    overlay: 'prod',
    mutate: (o) => void podOf(o, 'gateway').volumes!.push({ name: 'extra', configMap: { name: 'gateway-extra' } }),
    expected: 'Deployment/gateway: volume extra uses ConfigMap gateway-extra that does not exist',
  },
  envFromMissingConfigMap: {
    overlay: 'prod',
    mutate: (o) => void (containerOf(o, 'users').envFrom![0]!.configMapRef!.name = 'users-config-gone'),
    expected: 'Deployment/users container users: envFrom ConfigMap users-config-gone does not exist',
  },
  noResource: {
    overlay: 'prod',
    mutate: (o) => void delete containerOf(o, 'gateway').resources!.limits!.memory,
    expected: 'Deployment/gateway container gateway: no limits.memory',
  },
  unreadVariable: {
    overlay: 'prod',
    mutate: (o) => void (configOf(o, 'gateway').data.MAX_UPLOAD_BYTE = '1'),
    expected:
      'Deployment/gateway container gateway: sets MAX_UPLOAD_BYTE, which the gateway config (src/config.ts) does not read',
  },
  scratchNotBounded: {
    overlay: 'prod',
    mutate: (o) =>
      void (containerOf(o, 'converter').volumeMounts!.find((m) => m.name === 'scratch')!.mountPath = '/work'),
    expected:
      'Deployment/converter container converter: SCRATCH_DIR /scratch is not a mounted emptyDir with a sizeLimit',
  },
  noProbe: {
    overlay: 'prod',
    mutate: (o) => void delete containerOf(o, 'media').readinessProbe,
    expected: 'Deployment/media container media: no readinessProbe',
  },
  probeOffHealthRoute: {
    overlay: 'dev',
    mutate: (o) => void (containerOf(o, 'jobs').livenessProbe!.httpGet!.path = '/graphql'),
    expected: 'Deployment/jobs container jobs: livenessProbe is not GET /healthz on port 4003',
  },
  containerRunAsRoot: {
    overlay: 'prod',
    mutate: (o) => void (containerOf(o, 'users').securityContext!.runAsNonRoot = false),
    expected: 'Deployment/users container users: runs without runAsNonRoot',
  },
  writableRootFilesystem: {
    overlay: 'prod',
    mutate: (o) => void (containerOf(o, 'users').securityContext!.readOnlyRootFilesystem = false),
    expected: 'Deployment/users container users: securityContext.readOnlyRootFilesystem is not true',
  },
  privilegeEscalation: {
    overlay: 'prod',
    mutate: (o) => void delete containerOf(o, 'media').securityContext!.allowPrivilegeEscalation,
    expected: 'Deployment/media container media: securityContext.allowPrivilegeEscalation is not false',
  },
  capabilitiesKept: {
    overlay: 'prod',
    mutate: (o) => void (containerOf(o, 'converter').securityContext!.capabilities!.drop = ['NET_RAW']),
    expected: 'Deployment/converter container converter: securityContext.capabilities.drop lacks ALL',
  },
  noImage: {
    overlay: 'prod',
    mutate: (o) => void delete containerOf(o, 'jobs').image,
    expected: 'Deployment/jobs container jobs: no image',
  },
  imageUntagged: {
    overlay: 'prod',
    mutate: (o) => void (containerOf(o, 'jobs').image = 'registry.example.com:5000/vidmp3/jobs'),
    expected: 'Deployment/jobs container jobs: image registry.example.com:5000/vidmp3/jobs has no tag',
  },
  imageLatest: {
    overlay: 'dev',
    mutate: (o) => void (containerOf(o, 'jobs').image = 'vidmp3/jobs:latest'),
    expected: 'Deployment/jobs container jobs: image vidmp3/jobs:latest uses the latest tag',
  },
  noDisruptionBudget: {
    overlay: 'prod',
    mutate: (o) => void without(o, 'PodDisruptionBudget', 'users'),
    expected: 'Deployment/users: runs 3 replicas and has no PodDisruptionBudget',
  },
  secretCommitted: {
    overlay: 'dev',
    mutate: (o) => void o.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'leaked' }, data: { a: 'eA==' } }),
    expected:
      'Secret/leaked: has data committed; secrets are created in the cluster (docs/DEPLOY.md), only referenced here',
  },
  secretInConfigMap: {
    overlay: 'prod',
    mutate: (o) =>
      void o.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'stray' }, data: { MYSQL_URL: 'x' } }),
    expected:
      'ConfigMap/stray: carries the secret MYSQL_URL; secrets are created in the cluster (docs/DEPLOY.md), only referenced here',
  },
  secretLiteral: {
    overlay: 'dev',
    mutate: (o) => {
      const rabbitmq = podOf(o, 'rabbitmq', 'StatefulSet').containers[0]!;
      rabbitmq.env = rabbitmq.env!.map((e) => (e.name === 'RABBITMQ_DEFAULT_PASS' ? { name: e.name, value: 'x' } : e));
    },
    expected:
      'StatefulSet/rabbitmq container rabbitmq: sets the secret RABBITMQ_DEFAULT_PASS as a literal value; take it from a Secret (valueFrom.secretKeyRef)',
  },
  secretFromElsewhere: {
    overlay: 'prod',
    mutate: (o) => {
      const users = containerOf(o, 'users');
      users.env = users.env!.map((e) =>
        e.name === 'MYSQL_URL' ? { name: e.name, valueFrom: { configMapKeyRef: { name: 'db', key: 'url' } } } : e,
      );
    },
    expected:
      'Deployment/users container users: takes the secret MYSQL_URL from ConfigMap db key url, not from a Secret (secretKeyRef)',
  },
  secretPathOffSecretVolume: {
    overlay: 'prod',
    mutate: (o) => void containerOf(o, 'media').env!.push({ name: 'DOWNLOAD_KEY_FILE', value: '/tmp/signing.key' }),
    expected: 'Deployment/media container media: DOWNLOAD_KEY_FILE /tmp/signing.key is not on a mounted Secret volume',
  },
  noDefaultDeny: {
    overlay: 'prod',
    mutate: (o) => void (find<INetworkPolicy>(o, 'NetworkPolicy', 'default-deny').spec!.policyTypes = ['Ingress']),
    expected: 'NetworkPolicy: no default deny (podSelector {}, policyTypes Ingress and Egress, no rules)',
  },
  ingressTooOpen: {
    overlay: 'prod',
    mutate: (o) =>
      void find<INetworkPolicy>(o, 'NetworkPolicy', 'users').spec!.ingress!.push({
        from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'converter' } } }],
        ports: [{ protocol: 'TCP', port: 4001 }],
      }),
    expected: 'NetworkPolicy: users accepts ingress from converter',
  },
  ingressTooClosed: {
    overlay: 'prod',
    mutate: (o) => unpeer(o, 'users', 'ingress', 'media'),
    expected: 'NetworkPolicy: users does not accept ingress from media',
  },
  egressTooOpen: {
    overlay: 'prod',
    mutate: (o) =>
      void find<INetworkPolicy>(o, 'NetworkPolicy', 'converter').spec!.egress!.push({
        to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'users' } } }],
        ports: [{ protocol: 'TCP', port: 4001 }],
      }),
    expected: 'NetworkPolicy: converter may connect to users:4001',
  },
  egressTooClosed: {
    overlay: 'prod',
    mutate: (o) => unpeer(o, 'converter', 'egress', 'jobs'),
    expected: 'NetworkPolicy: converter cannot connect to jobs:4003',
  },
  noMetricsPort: {
    overlay: 'prod',
    mutate: (o) => void delete configOf(o, 'gateway').data.METRICS_PORT,
    expected: 'Deployment/gateway: no METRICS_PORT, so /metrics is served on the public port 4000',
  },
  metricsOnPublicPort: {
    overlay: 'prod',
    mutate: (o) => void (configOf(o, 'gateway').data.METRICS_PORT = '4000'),
    expected: 'Deployment/gateway: METRICS_PORT 4000 is the public port, so /metrics is public',
  },
  metricsPortNotExposed: {
    overlay: 'prod',
    mutate: (o) => {
      const gateway = containerOf(o, 'gateway');
      gateway.ports = gateway.ports!.filter((p) => p.containerPort !== 9464);
    },
    expected: 'Deployment/gateway: METRICS_PORT 9464 is not a containerPort',
  },
  scrapePortWrong: {
    overlay: 'prod',
    mutate: (o) =>
      void (find<IDeployment>(o, 'Deployment', 'gateway').spec!.template.metadata!.annotations!['prometheus.io/port'] =
        '4000'),
    expected: 'Deployment/gateway: prometheus.io/port 4000 is not its metrics port 9464',
  },
  prometheusBlocked: {
    overlay: 'prod',
    mutate: (o) => {
      const rule = find<INetworkPolicy>(o, 'NetworkPolicy', 'allow-prometheus').spec!.ingress![0]!;
      rule.ports = rule.ports!.filter((p) => p.port !== 4002);
    },
    expected: 'NetworkPolicy: Prometheus (namespace monitoring) cannot reach media:4002',
  },
  kedaBlocked: {
    overlay: 'dev',
    mutate: (o) => {
      const rules = find<INetworkPolicy>(o, 'NetworkPolicy', 'rabbitmq').spec!.ingress!;
      const keda = rules.find((r) =>
        r.from?.some((p) => p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'keda'),
      )!;
      keda.ports = [{ protocol: 'TCP', port: 5672 }];
    },
    expected: 'NetworkPolicy: KEDA (namespace keda) cannot reach rabbitmq:15672',
  },
  noGatewayAutoscaler: {
    overlay: 'prod',
    mutate: (o) => void without(o, 'HorizontalPodAutoscaler', 'gateway'),
    expected: 'HorizontalPodAutoscaler: none targets Deployment/gateway',
  },
  noWorkerScaler: {
    overlay: 'prod',
    mutate: (o) => void without(o, 'ScaledObject', 'converter'),
    expected: 'ScaledObject: none targets Deployment/converter',
  },
  scalerTargetsOther: {
    overlay: 'prod',
    mutate: (o) => {
      const other = structuredClone<KubeObject & ReturnType<typeof scalerOf>>(scalerOf(o));
      other.metadata.name = 'media';
      other.spec.scaleTargetRef.name = 'media';
      o.push(other);
    },
    expected: 'ScaledObject/media: targets media, not the converter workers',
  },
  triggerWrongQueue: {
    overlay: 'prod',
    mutate: (o) => void (scalerOf(o).spec.triggers[0]!.metadata.queueName = 'vidmp3.job-events'),
    expected: 'ScaledObject/converter: trigger rabbitmq on vidmp3.job-events is not the work queue vidmp3.conversions',
  },
  triggerCountsWaitingOnly: {
    overlay: 'prod',
    mutate: (o) => void (scalerOf(o).spec.triggers[0]!.metadata.protocol = 'amqp'),
    expected:
      'ScaledObject/converter: trigger must count waiting and running conversions (protocol http, mode QueueLength)',
  },
  triggerUnauthenticated: {
    overlay: 'prod',
    mutate: (o) => void delete scalerOf(o).spec.triggers[0]!.authenticationRef,
    expected: 'ScaledObject/converter: trigger has no authenticationRef (a TriggerAuthentication from a Secret)',
  },
  triggerAuthMissing: {
    overlay: 'prod',
    mutate: (o) => void without(o, 'TriggerAuthentication', 'converter-rabbitmq'),
    expected: 'ScaledObject/converter: TriggerAuthentication converter-rabbitmq does not exist',
  },
  noIngress: {
    overlay: 'prod',
    mutate: (o) => void without(o, 'Ingress', 'vidmp3'),
    expected: 'Ingress: none routes to the gateway',
  },
  bodySizeTooSmall: {
    overlay: 'prod',
    mutate: (o) => annotate(o, 'proxy-body-size', '1g'),
    expected: 'Ingress/vidmp3: proxy-body-size 1g is below MAX_UPLOAD_BYTES (2147483648)',
  },
  uploadsBuffered: {
    overlay: 'prod',
    mutate: (o) => annotate(o, 'proxy-request-buffering', 'on'),
    expected: 'Ingress/vidmp3: uploads are buffered (proxy-request-buffering is not off)',
  },
  proxyTimeoutShort: {
    overlay: 'prod',
    mutate: (o) => annotate(o, 'proxy-send-timeout', '60'),
    expected: 'Ingress/vidmp3: proxy-send-timeout 60 cuts WebSockets and long uploads (< 3600)',
  },
  routesElsewhere: {
    overlay: 'prod',
    mutate: (o) => void (ingressOf(o).spec!.rules![0]!.http!.paths[0]!.backend.service!.name = 'media'),
    expected: 'Ingress/vidmp3: routes / to media',
  },
  graceUnset: {
    overlay: 'prod',
    mutate: (o) => void delete configOf(o, 'gateway').data.SHUTDOWN_GRACE_SECONDS,
    expected: 'Deployment/gateway: SHUTDOWN_GRACE_SECONDS is not set; requests in flight are cut after the default',
  },
  terminationTooShort: {
    overlay: 'prod',
    mutate: (o) => void (podOf(o, 'media').terminationGracePeriodSeconds = 60),
    expected: 'Deployment/media: terminationGracePeriodSeconds 60 < preStop 5 + SHUTDOWN_GRACE_SECONDS 110 + 5 (120)',
  },
  graceBelowConversion: {
    overlay: 'prod',
    mutate: (o) => void (configOf(o, 'converter').data.CONVERSION_TIMEOUT_SECONDS = '3600'),
    expected:
      'Deployment/converter: SHUTDOWN_GRACE_SECONDS 1500 < CONVERSION_TIMEOUT_SECONDS 3600: stopping cuts conversions',
  },
};

/** The sentences a message's template can produce, as a pattern (each `{name}` stands for some text). */
const templatePattern = (message: PolicyMessage) =>
  new RegExp(
    `^${POLICY_MESSAGES[message]
      .split(/\{\w+\}/)
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.+')}$`,
  );

describe('every policy check', () => {
  it('has a mutation below, one per sentence the checks can produce', () => {
    expect(Object.keys(MUTATIONS).sort()).toEqual(Object.keys(POLICY_MESSAGES).sort());
  });

  it.each(Object.entries(MUTATIONS) as [PolicyMessage, Mutation][])(
    'fails on a render mutated to trigger %s, with that sentence alone',
    (message, { overlay, mutate, expected }) => {
      const objects = objectsOf(overlay);
      expect(checkPolicies(objects, { requireKeda: overlay === 'prod' })).toEqual([]);
      mutate(objects);

      expect(expected).toMatch(templatePattern(message));
      expect(checkPolicies(objects, { requireKeda: overlay === 'prod' })).toEqual([expected]);
    },
  );
});
