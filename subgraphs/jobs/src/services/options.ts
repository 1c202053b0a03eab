import { ErrorCode, userError, type ConversionOptions } from '@vidmp3/shared';

// What libmp3lame encodes as MPEG audio layer III: the standard bitrates and sample rates.
export const BITRATES_KBPS = [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] as const;
export const SAMPLE_RATES_HZ = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000] as const;
export const DEFAULT_BITRATE_KBPS = 192;

export interface OptionsInput {
  bitrateKbps?: number | null;
  sampleRateHz?: number | null;
  channels?: number | null;
  startSeconds?: number | null;
  endSeconds?: number | null;
}

const bad = (field: string, message: string) => userError(ErrorCode.BAD_USER_INPUT, message, { field });

/** Validates conversion options against the encoder and the input's duration; fills in defaults. */
export function validateOptions(input: OptionsInput | null | undefined, durationSeconds: number): ConversionOptions {
  const bitrateKbps = input?.bitrateKbps ?? DEFAULT_BITRATE_KBPS;
  if (!(BITRATES_KBPS as readonly number[]).includes(bitrateKbps)) {
    throw bad('bitrateKbps', `bitrateKbps must be one of ${BITRATES_KBPS.join(', ')}`);
  }
  const sampleRateHz = input?.sampleRateHz ?? null;
  if (sampleRateHz !== null && !(SAMPLE_RATES_HZ as readonly number[]).includes(sampleRateHz)) {
    throw bad('sampleRateHz', `sampleRateHz must be one of ${SAMPLE_RATES_HZ.join(', ')}`);
  }
  const channels = input?.channels ?? null;
  if (channels !== null && channels !== 1 && channels !== 2) throw bad('channels', 'channels must be 1 or 2');

  const startSeconds = input?.startSeconds ?? null;
  const endSeconds = input?.endSeconds ?? null;
  if (
    startSeconds !== null &&
    (!Number.isFinite(startSeconds) || startSeconds < 0 || startSeconds >= durationSeconds)
  ) {
    throw bad('startSeconds', `startSeconds must be at least 0 and before the end of the video (${durationSeconds} s)`);
  }
  if (endSeconds !== null) {
    if (!Number.isFinite(endSeconds) || endSeconds <= (startSeconds ?? 0)) {
      throw bad('endSeconds', 'endSeconds must come after startSeconds');
    }
    if (endSeconds > durationSeconds + 0.05) {
      throw bad('endSeconds', `endSeconds must be within the video's duration (${durationSeconds} s)`);
    }
  }
  return { bitrateKbps, sampleRateHz, channels, startSeconds, endSeconds };
}
