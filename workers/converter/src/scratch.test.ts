import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@vidmp3/shared';
import { Scratch } from './scratch.js';

const HOUR = 3_600_000;
let dir: string;
let scratch: Scratch;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-scratch-test-'));
  scratch = new Scratch(dir, HOUR, createLogger('test', 'silent'));
});
afterEach(async () => {
  scratch.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A file last written `ageMs` ago. */
async function leftOver(name: string, ageMs: number): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, 'mp3 bytes');
  const when = new Date(Date.now() - ageMs);
  await utimes(path, when, when);
  return path;
}

describe('the scratch directory', () => {
  it('removes what a crashed conversion left, once older than the longest conversion and its margin', async () => {
    await leftOver('crashed.mp3', 2 * HOUR);
    await leftOver('another-worker-converting.mp3', HOUR / 2);
    await mkdir(join(dir, '.cache'));
    await leftOver('.cache/ffmpeg-state', 2 * HOUR);
    const old = new Date(Date.now() - 2 * HOUR);
    await utimes(join(dir, '.cache'), old, old);

    expect((await scratch.sweep()).sort()).toEqual(['.cache', 'crashed.mp3']);
    expect(await readdir(dir)).toEqual(['another-worker-converting.mp3']);
  });

  it('never removes a file a running conversion holds, however old', async () => {
    const running = scratch.reserve('.mp3');
    await leftOver(basename(running), 2 * HOUR);
    expect(await scratch.sweep()).toEqual([]);
    await scratch.release(running);
    expect(await readdir(dir)).toEqual([]);
  });

  it('sweeps as soon as it starts', async () => {
    await leftOver('crashed.mp3', 2 * HOUR);
    await scratch.start(HOUR);
    expect(await readdir(dir)).toEqual([]);
  });

  it('carries on when the directory is missing', async () => {
    await rm(dir, { recursive: true });
    expect(await scratch.sweep()).toEqual([]);
  });
});
