import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IContainer } from 'kubernetes-models/v1/Container';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkPolicies } from './policy.js';
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
async function createdSecrets(overlay: Overlay): Promise<KubeObject[]> {
  const external = {
    USERS_MYSQL_URL: 'mysql://vidmp3_users:pw@mysql.example:3306/vidmp3_users',
    MEDIA_MYSQL_URL: 'mysql://vidmp3_media:pw@mysql.example:3306/vidmp3_media',
    JOBS_MYSQL_URL: 'mysql://vidmp3_jobs:pw@mysql.example:3306/vidmp3_jobs',
    MONGODB_URL: 'mongodb://vidmp3_media:pw@mongo.example:27017/vidmp3_media',
    RABBITMQ_URL: 'amqp://vidmp3:pw@rabbitmq.example:5672',
    RABBITMQ_MANAGEMENT_URL: 'https://vidmp3:pw@rabbitmq.example:15671/%2F',
  };
  const { stdout } = await promisify(execFile)(`${K8S_DIR}create-secrets.sh`, [overlay], {
    env: { ...process.env, ...(overlay === 'prod' ? external : {}), DRY_RUN: '1', KUBECTL },
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
      'Deployment/converter: terminationGracePeriodSeconds 30 < SHUTDOWN_GRACE_SECONDS + 5 (1205)',
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
