// A converter's mp3, described from its first frame instead of by an ffprobe run.
//
// Why: ffprobe is a process (≈ 290 MB of libraries mapped, confined through prlimit) started for every job,
// on the cores the conversions need; for a 12-second clip it cost as much as a fifth of ffmpeg's own run.
// The mp3s come from our own workers, whose ffmpeg writes a Xing/Info header in the first frame with the
// frame count and the stream's byte size. Media still trusts nothing it is told: it reads these facts from the
// bytes it received, and accepts them only when they are consistent with each other and with the file's size.
// Anything else (no Info header, another encoder, a size that does not add up) goes to ffprobe as before, so
// this check never accepts a file that ffprobe would refuse on the grounds ffprobe checked (container and
// codec from the headers; ffprobe does not decode the audio either).
import { open } from 'node:fs/promises';

/** Bytes read from the start of the file: an ID3v2 tag from our ffmpeg is ~45 bytes; others may be larger. */
const HEAD_BYTES = 16 * 1024;

// Indexed by the header's bitrate index (Layer III); 0 ("free") and 15 (bad) are refused.
const BITRATES_MPEG1 = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
const BITRATES_MPEG2 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
const SAMPLE_RATES: Record<number, number[]> = {
  3: [44100, 48000, 32000],
  2: [22050, 24000, 16000],
  0: [11025, 12000, 8000],
};

export interface Mp3Info {
  contentType: 'audio/mpeg';
  durationSeconds: number;
}

/**
 * Reads the duration of an MPEG audio Layer III stream from its Xing/Info header. Returns null whenever the
 * start of the file is not exactly that (then ffprobe decides). `fileSize` is the whole file's size.
 */
export function mp3InfoFromHead(head: Buffer, fileSize: number): Mp3Info | null {
  let offset = 0;
  // ID3v2: "ID3", version (2), flags, size as four 7-bit bytes; a footer (flag 0x10) adds 10 bytes.
  if (head.length >= 10 && head.toString('latin1', 0, 3) === 'ID3') {
    const sizeBytes = head.subarray(6, 10);
    if (sizeBytes.some((b) => b > 0x7f)) return null;
    const size = (sizeBytes[0]! << 21) | (sizeBytes[1]! << 14) | (sizeBytes[2]! << 7) | sizeBytes[3]!;
    offset = 10 + size + ((head[5]! & 0x10) !== 0 ? 10 : 0);
  }
  if (offset + 4 > head.length) return null;
  const b1 = head[offset + 1]!;
  const b2 = head[offset + 2]!;
  const b3 = head[offset + 3]!;
  if (head[offset] !== 0xff || (b1 & 0xe0) !== 0xe0) return null; // frame sync
  const version = (b1 >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
  if (((b1 >> 1) & 3) !== 1) return null; // Layer III only
  const rates = SAMPLE_RATES[version];
  const sampleRate = rates?.[(b2 >> 2) & 3];
  const bitrateKbps = (version === 3 ? BITRATES_MPEG1 : BITRATES_MPEG2)[b2 >> 4];
  if (!sampleRate || !bitrateKbps) return null;
  const mono = b3 >> 6 === 3;
  // The Info header sits right after the frame header and its side information.
  const sideInfo = version === 3 ? (mono ? 17 : 32) : mono ? 9 : 17;
  const tag = offset + 4 + sideInfo;
  if (tag + 16 > head.length) return null;
  const id = head.toString('latin1', tag, tag + 4);
  if (id !== 'Info' && id !== 'Xing') return null;
  const flags = head.readUInt32BE(tag + 4);
  // Both the frame count and the byte count must be there, so that each can check the other and the file.
  if ((flags & 3) !== 3) return null;
  const frames = head.readUInt32BE(tag + 8);
  const bytes = head.readUInt32BE(tag + 12);
  // The stream runs from the first frame to the end of the file (an ID3v1 tag of 128 bytes may follow).
  const streamBytes = fileSize - offset;
  if (frames === 0 || bytes > streamBytes || streamBytes - bytes > 128) return null;
  const samplesPerFrame = version === 3 ? 1152 : 576;
  const durationSeconds = (frames * samplesPerFrame) / sampleRate;
  // The average bitrate these figures give must be one an mp3 can have (8–320 kb/s, with slack for headers).
  const averageKbps = (bytes * 8) / durationSeconds / 1000;
  if (!(averageKbps >= 7 && averageKbps <= 330)) return null;
  return { contentType: 'audio/mpeg', durationSeconds };
}

/** `mp3InfoFromHead` on a file on local disk. */
export async function readMp3Info(path: string): Promise<Mp3Info | null> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const head = Buffer.alloc(Math.min(HEAD_BYTES, size));
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    return mp3InfoFromHead(head.subarray(0, bytesRead), size);
  } finally {
    await file.close();
  }
}
