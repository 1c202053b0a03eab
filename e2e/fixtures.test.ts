import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sample, sha256File, type SampleName } from './fixtures.js';

interface Atom {
  type: string;
  offset: number;
  size: number;
}

/**
 * The top-level boxes of an ISO BMFF / QuickTime file: each starts with a 4-byte big-endian size and a
 * 4-character type; size 1 means a 64-bit size follows, size 0 means "to the end of the file". Stops at a box
 * that claims to run past the end (a cut file).
 */
async function topLevelAtoms(path: string): Promise<Atom[]> {
  const file = await open(path, 'r');
  try {
    const { size: fileSize } = await file.stat();
    const header = Buffer.alloc(16);
    const atoms: Atom[] = [];
    let offset = 0;
    while (offset + 8 <= fileSize) {
      await file.read(header, 0, 16, offset);
      const type = header.toString('latin1', 4, 8);
      const declared = header.readUInt32BE(0);
      const size = declared === 1 ? Number(header.readBigUInt64BE(8)) : declared === 0 ? fileSize - offset : declared;
      if (size < 8) throw new Error(`impossible ${type} box of ${size} bytes at ${offset}`);
      atoms.push({ type, offset, size });
      offset += size;
    }
    return atoms;
  } finally {
    await file.close();
  }
}

const types = (atoms: Atom[]) => atoms.map((a) => a.type);

describe('test samples', () => {
  it('are made once and given back by absolute path under their own name', async () => {
    const names: SampleName[] = ['faststart.mp4', 'sample.webm', 'empty.mp4', 'unknown.bin'];
    for (const name of names) {
      const [first, second] = await Promise.all([sample(name), sample(name)]);
      expect(first).toBe(second);
      expect(isAbsolute(first)).toBe(true);
      expect(basename(first)).toBe(name);
      expect(await sample(name)).toBe(first);
    }
  });

  it('moov-at-end.mp4 has its moov atom after the media data, as ffmpeg writes an mp4 by default', async () => {
    const path = await sample('moov-at-end.mp4');
    const atoms = await topLevelAtoms(path);
    expect(atoms[0]?.type).toBe('ftyp');
    expect(types(atoms)).toContain('mdat');
    expect(types(atoms).indexOf('moov')).toBeGreaterThan(types(atoms).indexOf('mdat'));
    // The boxes account for every byte: nothing was cut or left over.
    const last = atoms.at(-1)!;
    expect(last.offset + last.size).toBe((await stat(path)).size);
  });

  it('faststart.mp4 has its moov atom before the media data', async () => {
    const atoms = await topLevelAtoms(await sample('faststart.mp4'));
    expect(atoms[0]?.type).toBe('ftyp');
    const moov = types(atoms).indexOf('moov');
    expect(moov).toBeGreaterThanOrEqual(0);
    expect(moov).toBeLessThan(types(atoms).indexOf('mdat'));
  });

  it('truncated.mp4 is the first half of moov-at-end.mp4, so it has no moov atom at all', async () => {
    const whole = await readFile(await sample('moov-at-end.mp4'));
    const cut = await readFile(await sample('truncated.mp4'));
    expect(cut.length).toBe(Math.floor(whole.length / 2));
    expect(cut.equals(whole.subarray(0, cut.length))).toBe(true);
    expect(types(await topLevelAtoms(await sample('truncated.mp4')))).not.toContain('moov');
  });

  it('empty.mp4 has no bytes, and the playlist names a remote URL and a local segment that exists', async () => {
    expect((await stat(await sample('empty.mp4'))).size).toBe(0);
    const playlist = await sample('playlist.m3u8');
    const entries = (await readFile(playlist, 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'));
    expect(entries.some((e) => e.startsWith('http://'))).toBe(true);
    const local = entries.filter((e) => !e.includes('://'));
    expect(local).toHaveLength(1);
    expect((await stat(join(dirname(playlist), local[0]!))).size).toBeGreaterThan(0);
  });

  it('sha256File gives the same digest as hashing the whole file at once', async () => {
    const path = await sample('sample.mkv');
    expect(await sha256File(path)).toBe(
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex'),
    );
    expect(await sha256File(await sample('empty.mp4'))).toBe(createHash('sha256').digest('hex'));
  });
});
