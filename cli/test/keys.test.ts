// `vidmp3 keys` and API keys in the real `vidmp3` binary (cli/dist/main.js) against a real running system.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { uniqueEmail } from '../../e2e/client.js';
import { sample } from '../../e2e/fixtures.js';
import { startSystem, type System } from '../../e2e/harness.js';

const bin = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const PASSWORD = 'correct horse battery staple';

let system: System;
let work: string;
let configPath: string;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built binary as a user would, with its own config file and the test system's URL. */
function vidmp3(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('VIDMP3_')) delete env[key];
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: work,
    env: { ...env, VIDMP3_CONFIG: configPath, VIDMP3_URL: `${system.gatewayUrl}/graphql`, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(options.input ?? '');
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vidmp3-cli-keys-'));
  configPath = join(work, 'home', 'vidmp3', 'config.json');
  [system] = await Promise.all([startSystem({}, { workers: 1 }), sample('faststart.mp4')]);
  const signup = await vidmp3(['signup', uniqueEmail('cli-keys'), '--password-stdin'], { input: `${PASSWORD}\n` });
  expect(signup.code).toBe(0);
}, 120_000);
afterAll(async () => {
  await system?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});
beforeEach(() => onTestFailed(() => console.error(system.logs())));

describe('vidmp3 keys', () => {
  it('creates a key printed once on stdout, lists it without the secret, and revokes it', async () => {
    const created = await vidmp3(['keys', 'create', 'laptop script', '--scope', 'read,convert']);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^vmp3_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/shown only this once/);
    expect(await readFile(configPath, 'utf8')).not.toContain(key);

    const listed = await vidmp3(['keys', 'list']);
    expect(listed.code).toBe(0);
    const [header, row] = listed.stdout.trim().split('\n');
    expect(header).toMatch(/^ID\s+NAME\s+SCOPES\s+CREATED\s+LAST USED$/);
    expect(row).toMatch(/laptop script\s+read,convert\s+\S+ \S+\s+never$/);
    expect(listed.stdout).not.toContain(key);

    const json = JSON.parse((await vidmp3(['--json', 'keys', 'list'])).stdout) as {
      apiKeys: { id: string; name: string }[];
    };
    const id = json.apiKeys.find((k) => k.name === 'laptop script')!.id;
    expect((await vidmp3(['whoami'], { env: { VIDMP3_API_KEY: key } })).code).toBe(0);

    const revoked = await vidmp3(['keys', 'revoke', id]);
    expect(revoked).toMatchObject({ code: 0, stdout: `Revoked API key ${id}\n` });
    const refused = await vidmp3(['whoami'], { env: { VIDMP3_API_KEY: key } });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/API key/);
    expect((await vidmp3(['keys', 'revoke', id])).code).toBe(4); // NOT_FOUND
  });

  it('uses VIDMP3_API_KEY or --api-key instead of the saved session, within the key scopes', async () => {
    const readKey = (await vidmp3(['keys', 'create', 'reader'])).stdout.trim();
    const convertKey = (await vidmp3(['keys', 'create', 'converter', '--scope', 'convert'])).stdout.trim();
    // No saved session at all: the key is the only credential.
    const noSession = { VIDMP3_CONFIG: join(work, 'nobody.json') };

    const jobs = await vidmp3(['jobs'], { env: { ...noSession, VIDMP3_API_KEY: readKey } });
    expect(jobs.code).toBe(0);
    const video = await sample('faststart.mp4');
    const forbidden = await vidmp3(['convert', video, '-o', join(work, 'no.mp3')], {
      env: { ...noSession, VIDMP3_API_KEY: readKey },
    });
    expect(forbidden.code).toBe(3);
    expect(forbidden.stderr).toMatch(/FORBIDDEN/);

    const converted = await vidmp3(['--api-key', convertKey, 'convert', video, '-o', join(work, 'yes.mp3')], {
      env: noSession,
    });
    expect(converted.stderr.split('\n').filter((l) => l.startsWith('vidmp3: '))).toEqual([]);
    expect(converted.code).toBe(0);

    // A key manages no keys.
    const denied = await vidmp3(['keys', 'create', 'more'], { env: { ...noSession, VIDMP3_API_KEY: convertKey } });
    expect(denied.code).toBe(3);
    expect(denied.stderr).toMatch(/FORBIDDEN/);
  });

  it('refuses an unknown scope before doing anything (exit 2)', async () => {
    const res = await vidmp3(['keys', 'create', 'x', '--scope', 'read,admin']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/Unknown scope admin/);
  });
});
