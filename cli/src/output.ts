// Where each mp3 goes, and writing it there without ever replacing a file the user did not ask to replace.
import { randomBytes } from 'node:crypto';
import { link, mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { inputError, usageError } from './errors.js';

export type OutputTarget =
  { kind: 'beside-input' } | { kind: 'directory'; path: string } | { kind: 'file'; path: string };

/** `video.mp4` → `video.mp3`; `archive.tar.mkv` → `archive.tar.mp3`; `noext` → `noext.mp3`. */
export function mp3Name(input: string): string {
  const name = basename(input);
  const ext = extname(name);
  return `${ext && ext !== name ? name.slice(0, -ext.length) : name}.mp3`;
}

/** The output path for one input under a resolved target. */
export function outputPathFor(input: string, target: OutputTarget): string {
  switch (target.kind) {
    case 'beside-input':
      return join(dirname(input), mp3Name(input));
    case 'directory':
      return join(target.path, mp3Name(input));
    case 'file':
      return target.path;
  }
}

async function statOrUndefined(path: string) {
  return stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/**
 * What `-o` means: with one input a file path (or an existing directory, or a path ending in `/`); with several,
 * a directory, created when missing. A file path's directory must exist, as with `curl -o`.
 */
export async function resolveOutputTarget(output: string | undefined, inputCount: number): Promise<OutputTarget> {
  if (output === undefined) return { kind: 'beside-input' };
  const path = resolve(output);
  const existing = await statOrUndefined(path);
  const wantsDirectory = inputCount > 1 || output.endsWith('/') || output.endsWith(sep);
  if (existing?.isDirectory()) return { kind: 'directory', path };
  if (wantsDirectory) {
    if (existing) throw usageError(`-o ${output}: not a directory (several files need an output directory)`);
    await mkdir(path, { recursive: true });
    return { kind: 'directory', path };
  }
  const parent = await statOrUndefined(dirname(path));
  if (!parent?.isDirectory()) throw usageError(`-o ${output}: directory ${dirname(output)} does not exist`);
  return { kind: 'file', path };
}

/** Refuses, before any upload, an output that exists (without --force) or that two inputs would share. */
export async function checkOutputFree(path: string, force: boolean): Promise<void> {
  const existing = await statOrUndefined(path);
  if (existing?.isDirectory()) throw inputError(`${path} is a directory`);
  if (existing && !force) throw inputError(`${path} already exists (use --force to overwrite it)`);
}

/** A temporary name beside the destination, so the finished file appears in one step. */
export const partialPath = (destination: string): string =>
  join(dirname(destination), `.${basename(destination)}.${randomBytes(6).toString('hex')}.part`);

/**
 * Moves a finished download into place. Without `force`, link() refuses to replace a file that appeared
 * meanwhile (rename would silently overwrite it).
 */
export async function publishFile(partial: string, destination: string, force: boolean): Promise<void> {
  try {
    if (force) {
      await rename(partial, destination);
    } else {
      await link(partial, destination).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') throw inputError(`${destination} already exists (use --force to overwrite it)`);
        throw err;
      });
    }
  } finally {
    await rm(partial, { force: true });
  }
}
