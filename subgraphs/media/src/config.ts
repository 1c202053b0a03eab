import { z } from 'zod';
import { env, loadConfig } from '@vidmp3/shared';

export const ConfigSchema = z.object({
  NODE_ENV: env.nodeEnv(),
  LOG_LEVEL: env.logLevel(),
  HOST: z.string().default('127.0.0.1'),
  PORT: env.port(4002),
  TRUST_PROXY: z.string().default('loopback, linklocal, uniquelocal'),
  JWKS_URL: env.url('http://127.0.0.1:4001/.well-known/jwks.json'),
  JWT_ISSUER: z.string().min(1).default('vidmp3'),
  JWT_AUDIENCE: z.string().min(1).default('vidmp3-api'),
});

export type Config = z.output<typeof ConfigSchema>;

export const readConfig = (): Config => loadConfig(ConfigSchema, process.env, 'media');
