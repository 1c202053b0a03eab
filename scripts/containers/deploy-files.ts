// docker-compose.yml, the rendered Kubernetes manifests and the Dockerfile held to services.ts, which the container
// smoke test proves by running the images: the same images, commands, users, ports, writable paths and variables.
// Each function returns one sentence per difference (none: they agree).
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { KubeObject } from '../../k8s/test/validate.js';
import { environmentOf, publishedPorts, type ComposeFile } from '../lib/compose-file.js';
import { lineage, parseStages } from '../lib/dockerfile.js';
import { IMAGE_VERSION, RUN_AS, composeEnv, k8sEnv, type ServiceSpec, type Writable } from './services.js';

const sorted = (values: Iterable<string>) => [...values].sort();
const same = (a: Iterable<string>, b: Iterable<string>) => sorted(a).join('\n') === sorted(b).join('\n');
const list = (values: Iterable<string>) => sorted(values).join(', ') || 'none';
const writables = (ws: readonly Writable[]) => ws.map((w) => `${w.path} (${w.kind})`);

/** The fields of a compose service this compares, beyond what scripts/lib/compose-file.ts reads. */
interface ComposeRuntime {
  command?: unknown;
  entrypoint?: unknown;
  user?: unknown;
  init?: boolean;
  read_only?: boolean;
  privileged?: boolean;
  cap_drop?: string[];
  cap_add?: string[];
  security_opt?: string[];
  tmpfs?: string | string[];
  volumes?: (string | { type?: string; source?: string; target?: string })[];
}

export function composeDrift(compose: ComposeFile, spec: ServiceSpec): string[] {
  const found: unknown = compose.services[spec.name];
  const service = found as (ComposeFile['services'][string] & ComposeRuntime) | undefined;
  if (!service) return [`compose: no service ${spec.name}`];
  const out: string[] = [];
  const at = `compose ${spec.name}`;
  const target = typeof service.build === 'object' ? service.build.target : undefined;
  if (target !== spec.name) out.push(`${at}: builds target ${target ?? 'none'}, not ${spec.name}`);
  const image = `${spec.image}:\${VIDMP3_VERSION:-${IMAGE_VERSION}}`;
  if (service.image !== image) out.push(`${at}: image ${service.image ?? 'none'}, not ${image}`);
  for (const key of ['command', 'entrypoint', 'user'] as const) {
    if (service[key] !== undefined) out.push(`${at}: overrides the image's ${key}`);
  }
  if (service.init !== true) out.push(`${at}: no init process (init: true)`);
  if (service.read_only !== true) out.push(`${at}: root filesystem not read-only`);
  if (service.privileged) out.push(`${at}: privileged`);
  if (!service.cap_drop?.includes('ALL')) out.push(`${at}: does not drop every capability`);
  if (service.cap_add?.length) out.push(`${at}: adds capabilities ${service.cap_add.join(', ')}`);
  if (!service.security_opt?.includes('no-new-privileges:true')) out.push(`${at}: may gain privileges`);

  const tmpfs = [service.tmpfs ?? []].flat().map((t) => ({ path: t.split(':')[0]!, kind: 'tmpfs' as const }));
  const volumes = (service.volumes ?? []).map((v) => {
    const [source, path] = typeof v === 'string' ? v.split(':') : [v.source, v.target];
    // A named volume: its name has no slash. A host path would be a bind mount, which nothing here declares.
    return { path: path ?? '?', kind: source && !source.includes('/') ? ('volume' as const) : ('bind' as const) };
  });
  const actual = writables([...tmpfs, ...volumes] as Writable[]);
  if (!same(actual, writables(spec.writable))) {
    out.push(`${at}: writes to ${list(actual)}; services.ts: ${list(writables(spec.writable))}`);
  }

  const env = environmentOf(service);
  if (!same(env.keys(), composeEnv(spec))) {
    out.push(`${at}: sets ${list(env.keys())}; services.ts: ${list(composeEnv(spec))}`);
  }
  out.push(...portDrift(at, spec, (name) => env.get(name)));
  const published = publishedPorts(service);
  for (const port of published) {
    if (port !== spec.port.number)
      out.push(`${at}: publishes container port ${port}, not its port ${spec.port.number}`);
  }
  const scratch = env.get('SCRATCH_DIR');
  if (scratch !== undefined && ![...tmpfs, ...volumes].some((w) => w.path === scratch)) {
    out.push(`${at}: SCRATCH_DIR ${scratch} is not writable`);
  }
  return out;
}

/** The port variables' values against services.ts. */
function portDrift(at: string, spec: ServiceSpec, value: (name: string) => string | undefined): string[] {
  const out: string[] = [];
  const ports: Record<string, number> = { [spec.port.variable]: spec.port.number, ...spec.otherPorts };
  for (const [name, port] of Object.entries(ports)) {
    if (value(name) !== String(port)) out.push(`${at}: ${name} is ${value(name) ?? 'unset'}, not ${port}`);
  }
  return out;
}

export function k8sDrift(objects: KubeObject[], spec: ServiceSpec): string[] {
  const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === spec.name) as
    (IDeployment & KubeObject) | undefined;
  const at = `k8s Deployment/${spec.name}`;
  const pod = deployment?.spec?.template.spec;
  if (!pod) return [`${at}: missing`];
  const out: string[] = [];
  if (pod.containers.length !== 1 || pod.containers[0]!.name !== spec.name) {
    out.push(`${at}: containers ${pod.containers.map((c) => c.name).join(', ')}, not one named ${spec.name}`);
  }
  const c = pod.containers.find((x) => x.name === spec.name) ?? pod.containers[0]!;
  const image = c.image ?? '';
  const [repository, tag] = [image.slice(0, image.lastIndexOf(':')), image.slice(image.lastIndexOf(':') + 1)];
  if (!(repository === spec.image || repository.endsWith(`/${spec.image}`)) || tag !== IMAGE_VERSION) {
    out.push(`${at}: image ${image}, not ${spec.image}:${IMAGE_VERSION} (under any registry)`);
  }
  if (c.command || c.args) out.push(`${at}: overrides the image's command`);
  const user = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
  const group = c.securityContext?.runAsGroup ?? pod.securityContext?.runAsGroup;
  if (user !== RUN_AS.uid || group !== RUN_AS.gid) {
    out.push(
      `${at}: runs as ${user ?? '?'}:${group ?? '?'}, not the image's ${RUN_AS.user} (${RUN_AS.uid}:${RUN_AS.gid})`,
    );
  }
  const sc = c.securityContext;
  if (sc?.readOnlyRootFilesystem !== true) out.push(`${at}: root filesystem not read-only`);
  if (sc?.allowPrivilegeEscalation !== false) out.push(`${at}: may gain privileges`);
  if (!sc?.capabilities?.drop?.includes('ALL')) out.push(`${at}: does not drop every capability`);
  if (sc?.capabilities?.add?.length) out.push(`${at}: adds capabilities ${sc.capabilities.add.join(', ')}`);
  if (sc?.privileged) out.push(`${at}: privileged`);

  // Both kinds are emptyDirs on Kubernetes.
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  const mounts = (c.volumeMounts ?? []).map((m) => {
    if (!volumes.get(m.name)?.emptyDir) out.push(`${at}: ${m.mountPath} is not an emptyDir`);
    return m.mountPath;
  });
  const paths = spec.writable.map((w) => w.path);
  if (!same(mounts, paths)) out.push(`${at}: writes to ${list(mounts)}; services.ts: ${list(paths)}`);

  const env = new Map<string, string | undefined>();
  for (const from of c.envFrom ?? []) {
    const name = from.configMapRef?.name;
    // kustomize's configMapGenerator appends a hash to the name.
    const cm = objects.find(
      (o) =>
        o.kind === 'ConfigMap' &&
        name !== undefined &&
        (o.metadata.name === name || o.metadata.name.startsWith(`${name}-`)),
    ) as (IConfigMap & KubeObject) | undefined;
    if (!cm) out.push(`${at}: envFrom ${name ?? from.secretRef?.name ?? '?'} is not a ConfigMap here`);
    for (const [k, v] of Object.entries(cm?.data ?? {})) env.set(k, v);
  }
  for (const e of c.env ?? []) env.set(e.name, e.value);
  if (!same(env.keys(), k8sEnv(spec))) out.push(`${at}: sets ${list(env.keys())}; services.ts: ${list(k8sEnv(spec))}`);
  out.push(...portDrift(at, spec, (name) => env.get(name)));
  const containerPorts = (c.ports ?? []).map((p) => String(p.containerPort));
  const expected = [spec.port.number, ...Object.values(spec.otherPorts)].map(String);
  if (!same(containerPorts, expected)) {
    out.push(`${at}: container ports ${list(containerPorts)}; services.ts: ${list(expected)}`);
  }
  const scratch = env.get('SCRATCH_DIR');
  if (scratch !== undefined && !mounts.includes(scratch)) out.push(`${at}: SCRATCH_DIR ${scratch} is not writable`);
  return out;
}

/** The Dockerfile's target: its CMD, USER and EXPOSE as services.ts says (the smoke test checks the built images). */
export function dockerfileDrift(dockerfile: string, spec: ServiceSpec): string[] {
  const stages = parseStages(dockerfile);
  if (!stages.some((s) => s.name === spec.name)) return [`Dockerfile: no target ${spec.name}`];
  const all = lineage(stages, spec.name)
    .reverse()
    .flatMap((s) => s.instructions);
  const last = (keyword: string) => all.filter((i) => i.keyword === keyword).at(-1)?.args;
  const out: string[] = [];
  const at = `Dockerfile ${spec.name}`;
  const cmd = last('CMD');
  let command: unknown;
  try {
    command = JSON.parse(cmd ?? 'null');
  } catch {
    command = cmd; // the shell form: never what services.ts says
  }
  if (JSON.stringify(command) !== JSON.stringify(spec.command)) out.push(`${at}: CMD ${cmd ?? 'none'}`);
  if (last('USER') !== RUN_AS.user) out.push(`${at}: USER ${last('USER') ?? 'none'}, not ${RUN_AS.user}`);
  if (last('EXPOSE') !== String(spec.port.number)) out.push(`${at}: EXPOSE ${last('EXPOSE') ?? 'none'}`);
  return out;
}
