// Checks of docker-compose.yml (the supergraph composition is ./compose.ts) against the code: services it depends
// on exist, each deployable is given only variables its src/config.ts reads, every ${VAR} has a default or is
// documented in .env.example.
import { parse } from 'yaml';
import type { Deployable } from './service-env.js';

interface ComposeService {
  image?: string;
  build?: { context?: string; target?: string } | string;
  environment?: Record<string, string | number | null> | string[];
  depends_on?: string[] | Record<string, unknown>;
  healthcheck?: { test?: unknown; disable?: boolean };
  ports?: (string | number | { target?: number | string; published?: number | string })[];
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
}

export const parseCompose = (text: string): ComposeFile => parse(text, { merge: true }) as ComposeFile;

export interface ComposeExpectations {
  /** Variables each deployable reads (scripts/lib/service-env.ts). */
  serviceEnv: Record<Deployable, Set<string>>;
  /** Stages of the Dockerfile, for build targets. */
  dockerfileStages: Set<string>;
  /** The text of .env.example. */
  envExample: string;
}

export function environmentOf(service: ComposeService): Map<string, string> {
  const env = service.environment ?? {};
  const entries = Array.isArray(env)
    ? env.map((e) => [e.split('=')[0] ?? '', e.slice(e.indexOf('=') + 1)] as const)
    : Object.entries(env).map(([k, v]) => [k, String(v ?? '')] as const);
  return new Map(entries);
}

/** Every `${VAR}` the file interpolates, and whether it carries a default (`:-` or `-`). `$${...}` is escaped. */
export function interpolations(text: string): { name: string; hasDefault: boolean }[] {
  return [...text.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?[^}]*\}/g)].map((m) => ({
    name: m[1]!,
    hasDefault: m[2] === ':-' || m[2] === '-',
  }));
}

/** The container ports a service publishes on the host (short `[ip:][host:]container[/proto]` or long syntax). */
export function publishedPorts(service: ComposeService): number[] {
  return (service.ports ?? []).flatMap((p) => {
    if (typeof p === 'object') return p.published === undefined ? [] : [Number(p.target)];
    const container = String(p).split('/')[0]!.split(':').at(-1)!;
    return container.includes('-') ? [] : [Number(container)];
  });
}

/**
 * Whether an Express `trust proxy` value believes X-Forwarded-For from addresses other than this host's: private,
 * link-local or unique-local ranges, `true`, or a hop count (any peer).
 */
export function trustsBeyondLoopback(value: string): boolean {
  return value
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter(Boolean)
    .some((v) => !['loopback', '127.0.0.1', '::1', '127.0.0.1/8', '::1/128', 'false'].includes(v));
}

export function checkCompose(text: string, expect: ComposeExpectations): string[] {
  const out: string[] = [];
  const compose = parseCompose(text);
  const services = compose.services ?? {};
  const documented = new Set([...expect.envExample.matchAll(/^#?\s*([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]!));

  for (const [name, service] of Object.entries(services)) {
    const deps = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
    for (const dep of deps) if (!services[dep]) out.push(`${name}: depends on ${dep}, which is not a service`);

    const image = service.image;
    const tag = image?.slice(image.lastIndexOf('/') + 1).split(':')[1];
    if (!image) out.push(`${name}: no image name`);
    else if (!tag || tag === 'latest' || !/\d/.test(tag))
      out.push(`${name}: image ${image} is not pinned to a version`);

    if (!service.healthcheck?.test || service.healthcheck.disable) out.push(`${name}: no healthcheck`);

    if (name in expect.serviceEnv) {
      const known = expect.serviceEnv[name as Deployable];
      for (const variable of environmentOf(service).keys()) {
        if (!known.has(variable)) out.push(`${name}: sets ${variable}, which its src/config.ts does not read`);
      }
      const env = environmentOf(service);
      const published = publishedPorts(service);
      if (published.length > 0) {
        // Clients reach a published port directly: whoever may send X-Forwarded-For may pick their address (and
        // walk around per-IP throttles). Set it explicitly; the subgraphs' defaults trust private networks.
        const trust = env.get('TRUST_PROXY');
        if (known.has('TRUST_PROXY') && (trust === undefined || trustsBeyondLoopback(trust))) {
          out.push(
            `${name}: publishes its port yet believes X-Forwarded-For from ${trust ?? 'its default'} (TRUST_PROXY: loopback)`,
          );
        }
        if (known.has('METRICS_PORT')) {
          const metrics = env.get('METRICS_PORT');
          if (!metrics || metrics === env.get('PORT')) {
            out.push(`${name}: serves /metrics on its published port (set METRICS_PORT to another port)`);
          } else if (published.includes(Number(metrics))) {
            out.push(`${name}: publishes its METRICS_PORT ${metrics}`);
          }
        }
      }
      const target = typeof service.build === 'object' ? service.build.target : undefined;
      if (!target || !expect.dockerfileStages.has(target)) {
        out.push(`${name}: not built from a Dockerfile target (${target ?? 'none'})`);
      }
    }
  }

  for (const { name, hasDefault } of interpolations(text)) {
    if (!hasDefault && !documented.has(name)) out.push(`\${${name}} has no default and is not in .env.example`);
  }

  const media = services.media && environmentOf(services.media);
  if (!media?.get('MONGODB_URL')?.startsWith('mongodb://')) out.push('media: blobs are not on GridFS (no MONGODB_URL)');
  return [...new Set(out)];
}
