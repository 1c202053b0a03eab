import { z } from 'zod';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment against a schema; throws a ConfigError naming every problem at once. */
export function parseConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.output<S> {
  // An empty (or blank) variable means "unset", the usual shell and compose convention: defaults apply.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`));
}

/** For a service's config.ts: parse, or print every problem and stop the process before it starts. */
export function loadConfig<S extends z.ZodType>(
  schema: S,
  env: Record<string, string | undefined>,
  service: string,
): z.output<S> {
  try {
    return parseConfig(schema, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${service}: ${err.message}\n`);
    process.exit(1);
  }
}

const boolean = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** Reusable field types for service configs. */
export const env = {
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  url: (fallback?: string) => (fallback === undefined ? z.url() : z.url().default(fallback)),
  bool: (fallback: boolean) => boolean.default(fallback),
  /** A boolean whose default depends on other settings: undefined when unset. */
  optionalBool: () => boolean.optional(),
  list: (fallback: string[] = []) =>
    z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      )
      .default(fallback),
  nodeEnv: () => z.enum(['development', 'production', 'test']).default('development'),
  /**
   * SHUTDOWN_GRACE_SECONDS of an HTTP service: after SIGTERM, requests in flight (uploads, downloads) get this
   * long to finish before their connections are cut. Keep it under the pod's terminationGracePeriodSeconds.
   */
  shutdownGrace: (fallback = 10) => z.coerce.number().int().min(1).max(3_600).default(fallback),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
};

/**
 * The service-to-service token (media, jobs, converter workers) used when INTERNAL_API_TOKEN is unset outside
 * production: the same value everywhere, so the services find each other on one machine without setup.
 */
export const DEV_INTERNAL_API_TOKEN = 'vidmp3-development-internal-token';
