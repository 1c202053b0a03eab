// Schema validation of rendered objects with kubernetes-models (the Kubernetes OpenAPI schemas, compiled).
//
// Those schemas do not forbid unknown properties (Kubernetes' OpenAPI leaves additionalProperties open), so a
// misspelled field such as `readinesProbe` would pass. To be strict, the object is validated through proxies
// that record which properties the validator looked at: a property of an object the validator inspected, that
// it never asked for, is unknown to the schema. Objects the validator enumerates (maps: labels, ConfigMap data,
// KEDA trigger metadata) accept any key.
import { Namespace, ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';

interface ModelClass {
  prototype: { validate(): void };
}

/** Every kind the manifests may contain; anything else is refused. */
const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
};

interface Seen {
  accessed: Set<string>;
  enumerated: boolean;
}

const isObject = (v: unknown): v is object => typeof v === 'object' && v !== null;

class AccessTracker {
  private readonly seen = new WeakMap<object, Seen>();
  private readonly proxies = new WeakMap<object, object>();

  wrap<T>(value: T): T {
    if (!isObject(value)) return value;
    const cached = this.proxies.get(value);
    if (cached) return cached as T;
    const seen: Seen = { accessed: new Set(), enumerated: false };
    this.seen.set(value, seen);
    const record = (key: string | symbol) => {
      if (typeof key === 'string') seen.accessed.add(key);
    };
    const proxy = new Proxy(value, {
      get: (target, key, receiver) => {
        record(key);
        return this.wrap(Reflect.get(target, key, receiver));
      },
      has: (target, key) => {
        record(key);
        return Reflect.has(target, key);
      },
      getOwnPropertyDescriptor: (target, key) => {
        record(key);
        return Reflect.getOwnPropertyDescriptor(target, key);
      },
      ownKeys: (target) => {
        seen.enumerated = true;
        return Reflect.ownKeys(target);
      },
    });
    this.proxies.set(value, proxy);
    return proxy;
  }

  unknownFields(value: unknown, path = ''): string[] {
    if (Array.isArray(value)) return value.flatMap((item, i) => this.unknownFields(item, `${path}[${i}]`));
    if (!isObject(value)) return [];
    const seen = this.seen.get(value);
    const record = value as Record<string, unknown>;
    const own =
      seen && !seen.enumerated && seen.accessed.size > 0
        ? Object.keys(record)
            .filter((key) => !seen.accessed.has(key))
            .map((key) => `${path}.${key}`)
        : [];
    return [...own, ...Object.keys(record).flatMap((key) => this.unknownFields(record[key], `${path}.${key}`))];
  }
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export const label = (o: KubeObject): string => `${o.kind}/${o.metadata?.name ?? '?'}`;

/** Problems of one object against its Kubernetes schema: an empty list when it is valid. */
export function validateObject(object: KubeObject): string[] {
  const model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (!model) return [`${label(object)}: unknown kind ${object.apiVersion}/${object.kind}`];
  const tracker = new AccessTracker();
  const problems: string[] = [];
  try {
    model.prototype.validate.call(tracker.wrap(object));
  } catch (err) {
    problems.push(`${label(object)}: ${err instanceof Error ? err.message : String(err)}`);
  }
  for (const field of tracker.unknownFields(object)) problems.push(`${label(object)}: unknown field ${field}`);
  return problems;
}
