// Command-line values → the API's ConversionOptions. The parsers accept what people type ("192k", "44.1kHz",
// "stereo", "1:30") and leave the allowed ranges to the server, which owns those rules and explains them.
import { InvalidArgumentError } from 'commander';
import type { ConversionOptions } from './sdk.js';
import { usageError } from './errors.js';

/** `192`, `192k`, `192kbps` → 192 (kbit/s). */
export function parseBitrate(value: string): number {
  const match = /^\s*(\d+)\s*(k|kb|kbps|kbit\/s)?\s*$/i.exec(value);
  const kbps = match ? Number(match[1]) : NaN;
  if (!Number.isSafeInteger(kbps) || kbps <= 0) {
    throw new InvalidArgumentError('Expected kbit/s as a whole number, like 128 or 192k.');
  }
  return kbps;
}

/** `44100`, `44.1k`, `48kHz`, `22050Hz` → Hz. */
export function parseSampleRate(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(k|khz|hz)?\s*$/i.exec(value);
  const unit = match?.[2]?.toLowerCase();
  const hz = match ? Number(match[1]) * (unit === 'k' || unit === 'khz' ? 1000 : 1) : NaN;
  if (!Number.isSafeInteger(hz) || hz <= 0) {
    throw new InvalidArgumentError('Expected a sample rate in Hz, like 44100 or 48k.');
  }
  return hz;
}

/** `1`, `2`, `mono`, `stereo` → channel count. */
export function parseChannels(value: string): number {
  const named: Record<string, number> = { mono: 1, stereo: 2 };
  const trimmed = value.trim().toLowerCase();
  const channels = named[trimmed] ?? (/^\d+$/.test(trimmed) ? Number(trimmed) : NaN);
  if (!Number.isSafeInteger(channels) || channels <= 0) {
    throw new InvalidArgumentError('Expected a channel count: 1, 2, mono or stereo.');
  }
  return channels;
}

/** `90`, `90.5`, `90s`, `1:30`, `01:02:03.5` → seconds. */
export function parseTime(value: string): number {
  const trimmed = value.trim();
  let seconds = NaN;
  const plain = /^(\d+(?:\.\d+)?)s?$/.exec(trimmed);
  const clock = /^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$/.exec(trimmed);
  if (plain) {
    seconds = Number(plain[1]);
  } else if (clock) {
    const [h, m, s] = [Number(clock[1] ?? 0), Number(clock[2]), Number(clock[3])];
    if (m < 60 && s < 60) seconds = h * 3600 + m * 60 + s;
  }
  if (!Number.isFinite(seconds)) {
    throw new InvalidArgumentError('Expected a time as seconds (90, 90.5) or [hh:]mm:ss (1:30, 0:01:30.5).');
  }
  return seconds;
}

/** What commander hands the convert action for the conversion flags. */
export interface ConversionFlags {
  bitrate?: number;
  sampleRate?: number;
  channels?: number;
  start?: number;
  end?: number;
}

/** The flags as the API's ConversionOptions; only the ones given are sent, so the server's defaults apply. */
export function toConversionOptions(flags: ConversionFlags): ConversionOptions {
  if (flags.start !== undefined && flags.end !== undefined && flags.end <= flags.start) {
    throw usageError(`--end (${flags.end} s) must be after --start (${flags.start} s)`);
  }
  const options: ConversionOptions = {};
  if (flags.bitrate !== undefined) options.bitrateKbps = flags.bitrate;
  if (flags.sampleRate !== undefined) options.sampleRateHz = flags.sampleRate;
  if (flags.channels !== undefined) options.channels = flags.channels;
  if (flags.start !== undefined) options.startSeconds = flags.start;
  if (flags.end !== undefined) options.endSeconds = flags.end;
  return options;
}
