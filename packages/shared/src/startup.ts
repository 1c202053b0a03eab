import type { Logger } from './logger.js';

const networkCodes = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENOTFOUND', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN']);

/** A dependency we could not reach at start: reported in one line, not a stack trace. */
export class DependencyError extends Error {
  constructor(
    readonly dependency: string,
    readonly address: string,
    cause: unknown,
  ) {
    const code = (cause as { code?: string } | null)?.code;
    super(`cannot reach ${dependency} at ${address}${code ? ` (${code})` : ''}`, { cause });
    this.name = 'DependencyError';
  }
}

/** Wraps a connection attempt so a refused or unresolvable address becomes a DependencyError. */
export async function connectTo<T>(dependency: string, url: string, connect: () => Promise<T>): Promise<T> {
  try {
    return await connect();
  } catch (err) {
    const code = (err as { code?: string } | null)?.code;
    if (code && networkCodes.has(code)) throw new DependencyError(dependency, redact(url), err);
    throw err;
  }
}

/** host:port of a URL, never its credentials. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(invalid url)';
  }
}

/** Runs a service's `main`, and on failure to start logs one clear line and exits 1. */
export function runService(logger: Logger, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof DependencyError) logger.fatal(err.message);
    else logger.fatal({ err }, 'failed to start');
    process.exit(1);
  });
}

/**
 * Graceful shutdown on SIGTERM/SIGINT: stop taking work, let in-flight work finish, close connections.
 * A second signal, or the grace period running out, exits at once.
 */
export function onShutdown(logger: Logger, close: () => Promise<void>, graceMs = 15_000): void {
  let closing = false;
  const handler = (signal: NodeJS.Signals) => {
    if (closing) process.exit(1);
    closing = true;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error('shutdown grace period over; exiting');
      process.exit(1);
    }, graceMs);
    timer.unref();
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
