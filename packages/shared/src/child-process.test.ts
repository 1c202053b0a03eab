import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confinedCommand, prlimitArguments, spawnConfined, type ResourceLimits } from './child-process.js';

const limits: ResourceLimits = {
  addressSpaceBytes: 768 * 1024 * 1024,
  cpuSeconds: 30,
  fileSizeBytes: 5 * 1024 * 1024,
  openFiles: 64,
};
const SECRET = 'child-process-test-secret-5f2c9a';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'vidmp3-child-'));
  process.env.VIDMP3_TEST_SECRET = SECRET;
});
afterAll(async () => {
  delete process.env.VIDMP3_TEST_SECRET;
  await rm(scratch, { recursive: true, force: true });
});

/** Runs a shell script confined and returns what it printed. */
async function runConfined(script: string, timeoutMs = 20_000) {
  const run = spawnConfined({ command: 'sh', args: ['-c', script], limits, scratchDir: scratch, timeoutMs });
  let out = '';
  run.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const [code, signal] = (await once(run.child, 'exit')) as [number | null, NodeJS.Signals | null];
  return { out, code, signal, timedOut: run.timedOut() };
}

describe('confinedCommand', () => {
  it('runs the tool through prlimit with every limit set as soft and hard limit, and no core dumps', () => {
    const c = confinedCommand({ command: 'ffprobe', args: ['-i', 'x'], limits, scratchDir: '/scratch' });
    expect(c.command).toBe('/usr/bin/prlimit');
    expect(c.args).toEqual([...prlimitArguments(limits), '--', 'ffprobe', '-i', 'x']);
    expect(c.args).toContain(`--as=${768 * 1024 * 1024}`);
    expect(c.args).toContain('--core=0');
    expect(Object.keys(c.env).sort()).toEqual(['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR']);
    expect(c.cwd).toBe('/scratch');
  });

  it('refuses a limit that is not a whole number', () => {
    expect(() => prlimitArguments({ ...limits, addressSpaceBytes: -1 })).toThrow(RangeError);
    expect(() => prlimitArguments({ ...limits, openFiles: 1.5 })).toThrow(RangeError);
  });
});

describe('spawnConfined', () => {
  it('gives the tool only the minimal environment, none of the service’s variables', async () => {
    const { out, code } = await runConfined('cat /proc/$$/environ');
    expect(code).toBe(0);
    const env = out.split('\0').filter(Boolean);
    expect(env.map((v) => v.split('=')[0]).sort()).toEqual(['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR']);
    expect(out).not.toContain(SECRET);
    expect(env).toContain(`HOME=${scratch}`);
  });

  it('applies the resource limits to the tool itself', async () => {
    const { out } = await runConfined('cat /proc/$$/limits');
    const limit = (name: string) => new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, 'm').exec(out)?.slice(1, 3);
    expect(limit('Max address space')).toEqual([String(limits.addressSpaceBytes), String(limits.addressSpaceBytes)]);
    expect(limit('Max cpu time')).toEqual(['30', '30']);
    expect(limit('Max file size')).toEqual([String(limits.fileSizeBytes), String(limits.fileSizeBytes)]);
    expect(limit('Max open files')).toEqual(['64', '64']);
    expect(limit('Max core file size')).toEqual(['0', '0']);
  });

  it('kills the tool when it outlives the wall-clock limit', async () => {
    const { signal, timedOut } = await runConfined('exec sleep 60', 300);
    expect(signal).toBe('SIGKILL');
    expect(timedOut).toBe(true);
  });

  it('kills a tool that writes past its file size limit', async () => {
    const { signal } = await runConfined(`exec head -c ${10 * 1024 * 1024} /dev/zero > big`);
    expect(signal).toBe('SIGXFSZ');
  });
});
