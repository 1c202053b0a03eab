// The environment variables each deployable reads, taken from the zod schema in its src/config.ts (the only reader
// of process.env), so that compose files and manifests can be checked against what the code really reads.
import { ConfigSchema as converter } from '../../workers/converter/src/config.js';
import { ConfigSchema as gateway } from '../../gateway/src/config.js';
import { ConfigSchema as jobs } from '../../subgraphs/jobs/src/config.js';
import { ConfigSchema as media } from '../../subgraphs/media/src/config.js';
import { ConfigSchema as notifier } from '../../workers/notifier/src/config.js';
import { ConfigSchema as users } from '../../subgraphs/users/src/config.js';

export type Deployable = 'gateway' | 'users' | 'media' | 'jobs' | 'converter' | 'notifier';

export const DEPLOYABLES: readonly Deployable[] = ['gateway', 'users', 'media', 'jobs', 'converter', 'notifier'];

/** The port each deployable's health routes (and /metrics) answer on by default, and the variable that moves it. */
export const HEALTH_PORTS: Record<Deployable, { port: number; variable: 'PORT' | 'HEALTH_PORT' }> = {
  gateway: { port: 4000, variable: 'PORT' },
  users: { port: 4001, variable: 'PORT' },
  media: { port: 4002, variable: 'PORT' },
  jobs: { port: 4003, variable: 'PORT' },
  converter: { port: 4010, variable: 'HEALTH_PORT' },
  notifier: { port: 4011, variable: 'HEALTH_PORT' },
};

interface SchemaLike {
  shape?: Record<string, unknown>;
  in?: unknown;
}

/** The keys of a config schema: a z.object, possibly refined (same object) or transformed (a pipe from it). */
export function envNames(schema: unknown): Set<string> {
  let current = schema as SchemaLike;
  for (let depth = 0; depth < 5; depth++) {
    if (current.shape) return new Set(Object.keys(current.shape));
    if (current.in === undefined) break;
    current = current.in as SchemaLike;
  }
  throw new Error('not a z.object config schema (or a transform of one)');
}

/** The variables each deployable's config reads. */
export const configEnv: Record<Deployable, Set<string>> = {
  gateway: envNames(gateway),
  users: envNames(users),
  media: envNames(media),
  jobs: envNames(jobs),
  converter: envNames(converter),
  notifier: envNames(notifier),
};
