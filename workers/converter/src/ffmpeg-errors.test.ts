import { JobErrorCode } from '@vidmp3/shared';
import { describe, expect, it } from 'vitest';
import { PermanentError, TransientError } from './errors.js';
import { classifyFfmpegFailure, isExpectedNoise, isStatsLine } from './ffmpeg-errors.js';

// Lines as Debian's ffmpeg 5.1 prints them at -loglevel error.
const url = 'http://127.0.0.1:4002/internal/media/0b0c/content';

function permanent(stderr: string): PermanentError {
  const err = classifyFfmpegFailure(stderr);
  expect(err).toBeInstanceOf(PermanentError);
  return err as PermanentError;
}

describe('classifyFfmpegFailure', () => {
  it('fails a video without audio for good as UNSUPPORTED_MEDIA', () => {
    const err = permanent("Stream map '0:a:0' matches no streams.\nTo ignore this, add a trailing '?' to the map.");
    expect(err.code).toBe(JobErrorCode.UNSUPPORTED_MEDIA);
    expect(err.message).toBe('The video has no audio track to convert.');
  });

  it('fails a damaged or unknown file for good as UNSUPPORTED_MEDIA', () => {
    for (const stderr of [
      `[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found\n${url}: Invalid data found when processing input`,
      `${url}: Invalid data found when processing input`,
      '[matroska,webm @ 0x55] EBML header parsing failed',
      `Format hls is not on whitelist 'mov,mp4'`,
    ]) {
      expect(permanent(stderr).code).toBe(JobErrorCode.UNSUPPORTED_MEDIA);
    }
  });

  it('fails for good with INPUT_GONE when the input answers 404 or 410', () => {
    expect(permanent(`${url}: Server returned 404 Not Found`).code).toBe(JobErrorCode.INPUT_GONE);
    expect(permanent('HTTP error 410 Gone').code).toBe(JobErrorCode.INPUT_GONE);
  });

  it('fails for good when the input answers another 4xx', () => {
    expect(permanent(`${url}: Server returned 403 Forbidden (access denied)`).code).toBe(
      JobErrorCode.UNSUPPORTED_MEDIA,
    );
    expect(permanent(`${url}: Server returned 4XX Client Error, but not one of 40{0,1,3,4}`).code).toBe(
      JobErrorCode.UNSUPPORTED_MEDIA,
    );
  });

  it('retries when the input answers 5xx or cannot be reached', () => {
    for (const stderr of [
      `${url}: Server returned 5XX Server Error reply`,
      `${url}: Server returned 503 Service Unavailable`,
      `[tcp @ 0x55] Connection to tcp://127.0.0.1:4002 failed: Connection refused\n${url}: Connection refused`,
      `${url}: Connection reset by peer`,
      `${url}: Connection timed out`,
      `[tcp @ 0x55] Failed to resolve hostname media: Temporary failure in name resolution`,
    ]) {
      expect(classifyFfmpegFailure(stderr)).toBeInstanceOf(TransientError);
    }
  });

  it('fails for good an input that needs more than the per-process limits allow', () => {
    for (const stderr of [
      '[aac @ 0x55] Cannot allocate memory\nffmpeg exited with code 1',
      'ffmpeg was killed with signal SIGXFSZ',
    ]) {
      expect(permanent(stderr).code).toBe(JobErrorCode.UNSUPPORTED_MEDIA);
    }
  });

  it('fails for good an audio stream whose decoder is not on the whitelist', () => {
    const stderr = 'Error while opening decoder for input stream #0:0 : Invalid argument';
    expect(permanent(stderr).code).toBe(JobErrorCode.UNSUPPORTED_MEDIA);
  });

  it('fails for good when ffmpeg refuses its own arguments: another attempt would pass the same ones', () => {
    for (const stderr of [
      'Invalid duration specification for ss: 1e-7',
      'Expected number for ar but found: abc',
      "Unrecognized option 'foo'.\nError splitting the argument list: Option not found",
    ]) {
      const err = permanent(stderr);
      expect(err.code).toBe(JobErrorCode.INVALID_OPTIONS);
      expect(err.message).toBe('The conversion options could not be applied to this video.');
    }
  });

  it('retries what it does not recognise (a crash, a full disk): attempts are bounded', () => {
    expect(classifyFfmpegFailure('ffmpeg was killed with signal SIGSEGV')).toBeInstanceOf(TransientError);
    expect(classifyFfmpegFailure('/tmp/x.mp3: No space left on device')).toBeInstanceOf(TransientError);
    expect(classifyFfmpegFailure('')).toBeInstanceOf(TransientError);
  });

  it('says what happened in a sentence, with no URL or path', () => {
    for (const stderr of [`${url}: Server returned 404 Not Found`, `${url}: Connection refused`, 'weird']) {
      const { message } = classifyFfmpegFailure(stderr);
      expect(message).toMatch(/^[A-Z].*\.$/);
      expect(message).not.toMatch(/https?:|\/|127\.0\.0\.1/);
    }
  });
});

describe('isExpectedNoise', () => {
  it('tells the refused video decoders of every probe from messages about the audio', () => {
    expect(isExpectedNoise("[h264 @ 0x55e7] Codec (h264) not on whitelist 'aac,aac_fixed'")).toBe(true);
    expect(isExpectedNoise('[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] Failed to open codec in avformat_find_stream_info')).toBe(
      true,
    );
    expect(isExpectedNoise('Error while opening decoder for input stream #0:1 : Invalid argument')).toBe(false);
    expect(isExpectedNoise("Protocol 'file' not on whitelist 'http,tcp'!")).toBe(false);
  });
});

describe('isStatsLine', () => {
  it('tells the periodic statistics from messages', () => {
    expect(isStatsLine('size=      24kB time=00:00:01.49 bitrate= 131.7kbits/s speed=29.8x')).toBe(true);
    expect(isStatsLine('frame=   45 fps=0.0 q=-1.0 size=N/A time=00:00:03.00')).toBe(true);
    expect(isStatsLine("Stream map '0:a:0' matches no streams.")).toBe(false);
  });
});
