// `vidmp3 webhooks`: the real binary (cli/dist/main.js) against a running system (no converter: none is needed).
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { PASSWORD, uniqueEmail } from '../../e2e/client.js';
import { startSystem, type System } from '../../e2e/harness.js';

const bin = fileURLToPath(new URL('../dist/main.js', import.meta.url));
/** A public address: creating a webhook for it resolves nothing and sends nothing. */
const HOOK_URL = 'https://93.184.215.14/hooks/vidmp3';

let system: System;
let work: string;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built binary as a user would, with its own config file and the test system's URL. */
function vidmp3(args: string[], input = ''): Promise<CliResult> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('VIDMP3_')) delete env[key];
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: work,
    env: { ...env, VIDMP3_CONFIG: join(work, 'config.json'), VIDMP3_URL: `${system.gatewayUrl}/graphql` },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vidmp3-cli-webhooks-'));
  system = await startSystem();
  const signup = await vidmp3(['signup', uniqueEmail('cli-webhooks'), '--password-stdin'], `${PASSWORD}\n`);
  expect(signup.code).toBe(0);
}, 120_000);
afterAll(async () => {
  await system?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

describe('vidmp3 webhooks', () => {
  it('creates a webhook and prints its secret once, lists it, sends a test event, shows deliveries, deletes it', async () => {
    const created = await vidmp3(['webhooks', 'create', HOOK_URL, '--events', 'job.succeeded,job.failed']);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    const id = /^webhook (\S+) created for /m.exec(created.stdout)?.[1];
    expect(id).toBeDefined();
    expect(created.stdout).toContain('events: job.succeeded, job.failed');
    expect(created.stdout).toMatch(/signing secret .*: whsec_[A-Za-z0-9+/]{43}=\n/);

    const list = await vidmp3(['webhooks', 'list']);
    expect(list).toMatchObject({ code: 0, stderr: '' });
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+enabled\\s+job\\.succeeded,job\\.failed\\s+${HOOK_URL}$`, 'm'));
    expect(list.stdout).not.toContain('whsec_'); // the secret is shown once only

    const test = await vidmp3(['webhooks', 'test', id!]);
    expect(test).toMatchObject({ code: 0, stderr: '' });
    expect(test.stdout).toMatch(/^test event sent: delivery \S+ PENDING/);

    const deliveries = await vidmp3(['--json', 'webhooks', 'deliveries', id!]);
    expect(deliveries.code).toBe(0);
    expect(JSON.parse(deliveries.stdout)).toMatchObject({
      deliveries: [{ eventType: 'webhook.test', status: 'PENDING', attempts: 0 }],
      hasMore: false,
    });
    const table = await vidmp3(['webhooks', 'deliveries', id!]);
    expect(table.stdout).toMatch(/^ID\s+STATUS\s+EVENT\s+ATTEMPTS\s+RESPONSE/);
    expect(table.stdout).toMatch(/\sPENDING\s+webhook\.test\s+0\s+-\s/);

    expect(await vidmp3(['webhooks', 'delete', id!])).toMatchObject({ code: 0, stdout: `webhook ${id} deleted\n` });
    expect((await vidmp3(['webhooks', 'list'])).stdout).toBe('No webhooks yet.\n');
  });

  it('exits 2 for an unknown event, 4 for a refused URL or an unknown webhook, with one clear line', async () => {
    const badEvent = await vidmp3(['webhooks', 'create', HOOK_URL, '--events', 'job.exploded']);
    expect(badEvent.code).toBe(2);
    expect(badEvent.stderr).toContain('Expected a comma-separated list of: job.queued');

    const privateUrl = await vidmp3(['webhooks', 'create', 'https://10.1.2.3/hook', '--events', 'media.deleted']);
    expect(privateUrl).toMatchObject({ code: 4, stdout: '' });
    expect(privateUrl.stderr).toMatch(/^vidmp3: the address 10\.1\.2\.3 is not a public one \(BAD_USER_INPUT\)\n$/);

    const unknown = await vidmp3(['webhooks', 'delete', '00000000-0000-4000-8000-000000000000']);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toMatch(/NOT_FOUND/);
  });
});
