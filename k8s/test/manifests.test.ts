import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkPolicies, secretViolations } from './policy.js';
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
    MONGODB_URL: 'mongodb://vidmp3_media:pw@mongo.example:27017/vidmp3_media',
    RABBITMQ_URL: 'amqp://vidmp3:pw@rabbitmq.example:5672',
    RABBITMQ_MANAGEMENT_URL: 'https://vidmp3:pw@rabbitmq.example:15671/%2F',
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

  it('report a container without a readiness probe', () => {
    const objects = objectsOf('prod');
    delete containerOf(objects, 'media').readinessProbe;
    expect(violations(objects)).toEqual(['Deployment/media container media: no readinessProbe']);
  });

  it('report a container without a memory limit', () => {
    const objects = objectsOf('prod');
    delete containerOf(objects, 'gateway').resources!.limits!.memory;
    expect(violations(objects)).toEqual(['Deployment/gateway container gateway: no limits.memory']);
  });

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

  it('report a secret kept in a ConfigMap', () => {
    const objects = objectsOf('prod');
    const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('jobs-config'))!;
    (config.data as Record<string, string>).INTERNAL_API_TOKEN = 'a'.repeat(32);
    expect(violations(objects)).toEqual([
      `ConfigMap/${config.metadata.name}: carries the secret INTERNAL_API_TOKEN; secrets are created in the cluster (docs/DEPLOY.md), only referenced here`,
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

  it('report workers scaled on a queue other than the work queue', () => {
    const objects = objectsOf('prod');
    const scaler = find<{ spec: { triggers: { metadata: Record<string, string> }[] } }>(
      objects,
      'ScaledObject',
      'converter',
    );
    scaler.spec.triggers[0]!.metadata.queueName = 'vidmp3.job-events';
    expect(violations(objects)).toEqual([
      'ScaledObject/converter: trigger rabbitmq on vidmp3.job-events is not the work queue vidmp3.conversions',
    ]);
  });
});
