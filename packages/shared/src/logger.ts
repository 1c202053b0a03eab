import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** JSON logs, one line each, with the service name on every line. */
export function createLogger(service: string, level: LevelWithSilent = 'info'): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'password', '*.password', 'token'],
      censor: '[redacted]',
    },
  });
}
