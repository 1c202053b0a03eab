// docker-compose.yml, every Kubernetes overlay and the Dockerfile against services.ts: the description the container
// smoke test (smoke.test.ts) runs the images by. A difference is drift between what is deployed and what was proved.
import { readFileSync } from 'node:fs';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { beforeAll, describe, expect, it } from 'vitest';
import { OVERLAYS, renderOverlay, type Overlay } from '../../k8s/test/render.js';
import type { KubeObject } from '../../k8s/test/validate.js';
import { parseCompose } from '../lib/compose-file.js';
import { DEPLOYABLES } from '../lib/service-env.js';
import { composeDrift, dockerfileDrift, k8sDrift } from './deploy-files.js';
import { SERVICES, serviceSpec, smokeEnv } from './services.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const compose = read('docker-compose.yml');
const dockerfile = read('Dockerfile');
const rendered = new Map<Overlay, KubeObject[]>();

beforeAll(async () => {
  for (const overlay of OVERLAYS) rendered.set(overlay, await renderOverlay(overlay));
});

const deployment = (objects: KubeObject[], name: string) =>
  (objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name) as unknown as IDeployment).spec!.template
    .spec!;

describe('services.ts', () => {
  it('describes every deployable once', () => {
    expect(SERVICES.map((s) => s.name).sort()).toEqual([...DEPLOYABLES].sort());
  });

  it('has the smoke run set everything either platform sets, but MONGODB_URL (no MongoDB here) for BLOB_DIR', () => {
    const media = serviceSpec('media');
    expect(smokeEnv(media)).toContain('BLOB_DIR');
    expect(smokeEnv(media)).not.toContain('MONGODB_URL');
    for (const s of SERVICES) {
      const extra = [...s.composeOnly, ...s.k8sOnly, ...s.env].filter((n) => n !== 'MONGODB_URL');
      expect(
        extra.filter((n) => !smokeEnv(s).includes(n)),
        s.name,
      ).toEqual([]);
    }
  });
});

describe.each(SERVICES.map((s) => [s.name, s] as const))('%s', (_name, spec) => {
  it('is built by the Dockerfile with the command, user and port the smoke test ran', () => {
    expect(dockerfileDrift(dockerfile, spec)).toEqual([]);
  });

  it('runs under compose as the smoke test ran it', () => {
    expect(composeDrift(parseCompose(compose), spec)).toEqual([]);
  });

  it.each(OVERLAYS)('runs on Kubernetes (%s overlay) as the smoke test ran it', (overlay) => {
    expect(k8sDrift(rendered.get(overlay)!, spec)).toEqual([]);
  });
});

describe('drift is reported', () => {
  it('in compose: another writable path, a variable more, a user override, a published port', () => {
    const parsed = parseCompose(
      compose
        .replace('      - converter-scratch:/scratch\n', '      - converter-scratch:/work\n')
        .replace(
          '      CONCURRENCY: ${CONVERTER_CONCURRENCY:-1}\n',
          "      CONCURRENCY: ${CONVERTER_CONCURRENCY:-1}\n      PREFETCH: '2'\n",
        ),
    );
    (parsed.services.converter as Record<string, unknown>).user = '0';
    (parsed.services.converter as Record<string, unknown>).cap_add = ['SYS_ADMIN'];
    expect(composeDrift(parsed, serviceSpec('converter'))).toEqual([
      "compose converter: overrides the image's user",
      'compose converter: adds capabilities SYS_ADMIN',
      'compose converter: writes to /tmp (tmpfs), /work (volume); services.ts: /scratch (volume), /tmp (tmpfs)',
      'compose converter: sets CONCURRENCY, CONVERSION_TIMEOUT_SECONDS, HEALTH_PORT, HOST, INTERNAL_API_TOKEN, JOBS_INTERNAL_URL, LOG_LEVEL, MEDIA_INTERNAL_URL, NODE_ENV, PREFETCH, RABBITMQ_URL, SCRATCH_DIR, SHUTDOWN_GRACE_SECONDS; services.ts: CONCURRENCY, CONVERSION_TIMEOUT_SECONDS, HEALTH_PORT, HOST, INTERNAL_API_TOKEN, JOBS_INTERNAL_URL, LOG_LEVEL, MEDIA_INTERNAL_URL, NODE_ENV, RABBITMQ_URL, SCRATCH_DIR, SHUTDOWN_GRACE_SECONDS',
      'compose converter: SCRATCH_DIR /scratch is not writable',
    ]);
  });

  it('in the manifests: another user, a missing mount, a command, another image', () => {
    const objects = structuredClone(rendered.get('prod')!);
    const pod = deployment(objects, 'media');
    pod.securityContext!.runAsUser = 0;
    pod.containers[0]!.volumeMounts = pod.containers[0]!.volumeMounts!.filter((m) => m.mountPath !== '/scratch');
    pod.containers[0]!.command = ['node', 'other.js'];
    pod.containers[0]!.image = 'registry.example.com/vidmp3/media:latest';
    expect(k8sDrift(objects, serviceSpec('media'))).toEqual([
      'k8s Deployment/media: image registry.example.com/vidmp3/media:latest, not vidmp3/media:0.1.0 (under any registry)',
      "k8s Deployment/media: overrides the image's command",
      "k8s Deployment/media: runs as 0:1000, not the image's node (1000:1000)",
      'k8s Deployment/media: writes to /tmp; services.ts: /scratch, /tmp',
      'k8s Deployment/media: SCRATCH_DIR /scratch is not writable',
    ]);
  });

  it('in the Dockerfile: another command, user or port', () => {
    const broken = dockerfile
      .replace('CMD ["node", "subgraphs/jobs/dist/main.js"]', 'CMD node subgraphs/jobs/dist/main.js')
      .replace('EXPOSE 4003', 'EXPOSE 8080');
    expect(dockerfileDrift(broken, serviceSpec('jobs'))).toEqual([
      'Dockerfile jobs: CMD node subgraphs/jobs/dist/main.js',
      'Dockerfile jobs: EXPOSE 8080',
    ]);
  });
});
