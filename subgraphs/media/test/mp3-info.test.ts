// The Info-header reading that spares media an ffprobe run per converted mp3: it must agree with ffprobe on
// what our workers' ffmpeg writes, and hand everything else to ffprobe (null).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sample } from '../../../e2e/fixtures.js';
import { acceptMp3, probe } from '../src/adapters/probe.js';
import { mp3InfoFromHead, readMp3Info } from '../src/services/mp3-info.js';

const run = promisify(execFile);
const ffmpegPath = process.env.FFMPEG_PATH ?? 'ffmpeg';
const ffprobePath = process.env.FFPROBE_PATH ?? 'ffprobe';
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vidmp3-mp3-info-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An mp3 as a worker's ffmpeg writes it (to a file, so it can fill in the Info header at the end). */
async function encode(name: string, seconds: number, args: string[]): Promise<string> {
  const path = join(dir, name);
  // prettier-ignore
  await run(ffmpegPath, ['-v', 'error', '-y', '-f', 'lavfi', '-i', `sine=d=${seconds}`, ...args, '-c:a', 'libmp3lame', '-f', 'mp3', path]);
  return path;
}

async function ffprobeSeconds(path: string): Promise<number> {
  const result = await probe(path, { ffprobePath, timeoutMs: 20_000, allow: 'audio-mp3' });
  acceptMp3(result);
  return result.durationSeconds;
}

describe('readMp3Info', () => {
  it.each([
    ['stereo 44.1 kHz at 192 kb/s', 12.3, ['-ac', '2', '-b:a', '192k']],
    ['mono 22.05 kHz at 64 kb/s (MPEG-2)', 7, ['-ar', '22050', '-ac', '1', '-b:a', '64k']],
    ['stereo 48 kHz at 320 kb/s', 3.5, ['-ar', '48000', '-ac', '2', '-b:a', '320k']],
    ['mono 8 kHz at 8 kb/s (MPEG-2.5)', 5, ['-ar', '8000', '-ac', '1', '-b:a', '8k']],
  ])('reads the same duration as ffprobe from a converter-written mp3, %s', async (_label, seconds, args) => {
    const path = await encode(`${seconds}.mp3`, seconds, args);
    const info = await readMp3Info(path);
    expect(info).not.toBeNull();
    expect(info!.contentType).toBe('audio/mpeg');
    expect(info!.durationSeconds).toBeCloseTo(await ffprobeSeconds(path), 5);
  });

  it('leaves an mp3 without a usable Info header to ffprobe (written to a pipe, its frame count is missing)', async () => {
    const { stdout } = await run(
      ffmpegPath,
      ['-v', 'error', '-f', 'lavfi', '-i', 'sine=d=2', '-c:a', 'libmp3lame', '-f', 'mp3', 'pipe:1'],
      { encoding: 'buffer', maxBuffer: 1 << 24 },
    );
    const path = join(dir, 'piped.mp3');
    await writeFile(path, stdout);
    expect(await readMp3Info(path)).toBeNull();
  });

  it('leaves a file whose size does not match its Info header to ffprobe: cut short, or with bytes appended', async () => {
    const bytes = await readFile(await encode('whole.mp3', 4, ['-b:a', '128k']));
    expect(mp3InfoFromHead(bytes, bytes.length)).not.toBeNull();
    expect(mp3InfoFromHead(bytes, bytes.length - 1000)).toBeNull();
    expect(mp3InfoFromHead(bytes, bytes.length + 4096)).toBeNull();
  });

  it('leaves anything that does not start as an mp3 to ffprobe: a video, text, nothing, a bare ID3 tag', async () => {
    const video = await readFile(await sample('faststart.mp4'));
    expect(mp3InfoFromHead(video.subarray(0, 16 * 1024), video.length)).toBeNull();
    expect(mp3InfoFromHead(Buffer.from('#EXTM3U\nhttp://example.com/a.ts\n'), 32)).toBeNull();
    expect(mp3InfoFromHead(Buffer.alloc(0), 0)).toBeNull();
    const tagOnly = Buffer.from([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 0]);
    expect(mp3InfoFromHead(tagOnly, tagOnly.length)).toBeNull();
  });

  it('refuses an Info header whose figures give an impossible bitrate', async () => {
    const bytes = Buffer.from(await readFile(await encode('forged.mp3', 3, ['-b:a', '128k'])));
    const tag = bytes.indexOf('Info');
    // One frame claimed for the whole file: ~26 ms of audio in tens of kilobytes.
    bytes.writeUInt32BE(1, tag + 8);
    expect(mp3InfoFromHead(bytes, bytes.length)).toBeNull();
  });
});
