import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigSchema as GatewayConfig } from '../gateway/src/config.js';
import { ConfigSchema as JobsConfig } from '../subgraphs/jobs/src/config.js';
import { ConfigSchema as MediaConfig } from '../subgraphs/media/src/config.js';
import { ConfigSchema as UsersConfig } from '../subgraphs/users/src/config.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Runs a built service to its exit and returns what it printed. */
function runToExit(entry: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [entry], {
      cwd: root,
      env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('starting a service', () => {
  it('names an unreachable database in one line instead of a stack trace, and exits 1', async () => {
    const { code, output } = await runToExit('subgraphs/users/dist/main.js', {
      MYSQL_URL: 'mysql://root:secret@127.0.0.1:1/vidmp3_users',
      KEYS_DIR: `${root}/data/test-keys-unused`,
    });
    expect(code).toBe(1);
    expect(output).toContain('cannot reach MySQL at mysql://127.0.0.1:1 (ECONNREFUSED)');
    expect(output).not.toContain('secret');
    expect(output).not.toMatch(/\n\s+at /);
  });

  it('lists every configuration problem at once and exits 1 before starting', async () => {
    const { code, output } = await runToExit('gateway/dist/main.js', {
      PORT: 'eighty',
      MAX_DEPTH: '-3',
      JWKS_URL: 'not a url',
    });
    expect(code).toBe(1);
    expect(output).toMatch(/invalid configuration/);
    for (const name of ['PORT', 'MAX_DEPTH', 'JWKS_URL']) expect(output).toContain(`${name}:`);
    expect(output).not.toMatch(/\n\s+at /);
  });

  it('gives no service but users a way to hold the signing key', () => {
    // Every setting a service reads, set or not (the gateway's schema is an object piped into a transform).
    const settings = (schema: z.ZodType): string[] =>
      schema instanceof z.ZodObject
        ? Object.keys(schema.shape)
        : schema instanceof z.ZodPipe
          ? settings(schema.in as z.ZodType)
          : [];
    expect(settings(UsersConfig)).toEqual(expect.arrayContaining(['JWT_PRIVATE_KEY', 'KEYS_DIR']));
    for (const schema of [GatewayConfig, MediaConfig, JobsConfig]) {
      expect(settings(schema).filter((name) => /PRIVATE|KEYS_DIR|SECRET/.test(name))).toEqual([]);
    }
  });
});
