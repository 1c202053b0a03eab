import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CliError, ExitCode } from '../src/errors.js';
import {
  checkOutputFree,
  mp3Name,
  outputPathFor,
  partialPath,
  publishFile,
  resolveOutputTarget,
} from '../src/output.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-cli-output-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const exitCodeOf = async (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (err: CliError) => err.exitCode,
  );

describe('output paths', () => {
  it('swap the extension for .mp3', () => {
    expect(mp3Name('/v/video.mp4')).toBe('video.mp3');
    expect(mp3Name('talk.final.mkv')).toBe('talk.final.mp3');
    expect(mp3Name('noext')).toBe('noext.mp3');
    expect(mp3Name('.hidden')).toBe('.hidden.mp3');
  });

  it('go beside the input by default', async () => {
    const target = await resolveOutputTarget(undefined, 2);
    expect(outputPathFor('/videos/a.mp4', target)).toBe('/videos/a.mp3');
  });

  it('are the given file for one input, or inside a given existing directory', async () => {
    const file = await resolveOutputTarget(join(dir, 'song.mp3'), 1);
    expect(outputPathFor('/v/a.mp4', file)).toBe(join(dir, 'song.mp3'));
    const existing = await resolveOutputTarget(dir, 1);
    expect(outputPathFor('/v/a.mp4', existing)).toBe(join(dir, 'a.mp3'));
  });

  it('make a directory for several inputs or a path ending in a slash', async () => {
    const several = await resolveOutputTarget(join(dir, 'music'), 2);
    expect(outputPathFor('/v/b.webm', several)).toBe(join(dir, 'music', 'b.mp3'));
    expect(await readdir(dir)).toContain('music');
    const slash = await resolveOutputTarget(`${join(dir, 'one')}/`, 1);
    expect(slash).toEqual({ kind: 'directory', path: join(dir, 'one') });
  });

  it('refuse a file as the directory for several inputs, and a file path in a missing directory', async () => {
    await writeFile(join(dir, 'taken'), 'x');
    expect(await exitCodeOf(resolveOutputTarget(join(dir, 'taken'), 2))).toBe(ExitCode.USAGE);
    expect(await exitCodeOf(resolveOutputTarget(join(dir, 'nope', 'a.mp3'), 1))).toBe(ExitCode.USAGE);
  });

  it('never replace an existing file without --force', async () => {
    const path = join(dir, 'a.mp3');
    await checkOutputFree(path, false);
    await writeFile(path, 'old');
    expect(await exitCodeOf(checkOutputFree(path, false))).toBe(ExitCode.INPUT);
    await expect(checkOutputFree(path, false)).rejects.toThrow('already exists (use --force to overwrite it)');
    await checkOutputFree(path, true);
    await mkdir(join(dir, 'd.mp3'));
    expect(await exitCodeOf(checkOutputFree(join(dir, 'd.mp3'), true))).toBe(ExitCode.INPUT);
  });

  it('publish a finished download in one step, refusing a file that appeared meanwhile unless forced', async () => {
    const destination = join(dir, 'a.mp3');
    const first = partialPath(destination);
    await writeFile(first, 'new');
    await publishFile(first, destination, false);
    expect(await readFile(destination, 'utf8')).toBe('new');

    const second = partialPath(destination);
    await writeFile(second, 'newer');
    await expect(publishFile(second, destination, false)).rejects.toThrow('already exists');
    expect(await readFile(destination, 'utf8')).toBe('new');

    const third = partialPath(destination);
    await writeFile(third, 'forced');
    await publishFile(third, destination, true);
    expect(await readFile(destination, 'utf8')).toBe('forced');
    expect(await readdir(dir)).toEqual(['a.mp3']);
  });
});
