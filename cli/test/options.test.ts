import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { CliError, ExitCode } from '../src/errors.js';
import { parseBitrate, parseChannels, parseSampleRate, parseTime, toConversionOptions } from '../src/options.js';

describe('conversion flags', () => {
  it('reads bitrates as people write them', () => {
    expect(parseBitrate('192')).toBe(192);
    expect(parseBitrate('128k')).toBe(128);
    expect(parseBitrate('320kbps')).toBe(320);
    expect(parseBitrate(' 64K ')).toBe(64);
    for (const bad of ['', 'abc', '0', '-128', '128.5', '1M']) {
      expect(() => parseBitrate(bad), bad).toThrow(InvalidArgumentError);
    }
  });

  it('reads sample rates in Hz or kHz', () => {
    expect(parseSampleRate('44100')).toBe(44100);
    expect(parseSampleRate('44.1k')).toBe(44100);
    expect(parseSampleRate('48kHz')).toBe(48000);
    expect(parseSampleRate('22050Hz')).toBe(22050);
    for (const bad of ['', 'fast', '0', '44.1', '-48000']) {
      expect(() => parseSampleRate(bad), bad).toThrow(InvalidArgumentError);
    }
  });

  it('reads channel counts and their names', () => {
    expect(parseChannels('1')).toBe(1);
    expect(parseChannels('2')).toBe(2);
    expect(parseChannels('mono')).toBe(1);
    expect(parseChannels('Stereo')).toBe(2);
    for (const bad of ['', '0', 'surround', '1.5']) {
      expect(() => parseChannels(bad), bad).toThrow(InvalidArgumentError);
    }
  });

  it('reads times as seconds or clock times', () => {
    expect(parseTime('90')).toBe(90);
    expect(parseTime('90.5')).toBe(90.5);
    expect(parseTime('12s')).toBe(12);
    expect(parseTime('1:30')).toBe(90);
    expect(parseTime('0:01:30.5')).toBe(90.5);
    expect(parseTime('2:00:00')).toBe(7200);
    for (const bad of ['', 'soon', '1:75', '-5', '1::2', '1:2:3:4']) {
      expect(() => parseTime(bad), bad).toThrow(InvalidArgumentError);
    }
  });

  it('sends only the options that were given, under the API names', () => {
    expect(toConversionOptions({})).toEqual({});
    expect(toConversionOptions({ bitrate: 128, sampleRate: 48000, channels: 1, start: 5, end: 35 })).toEqual({
      bitrateKbps: 128,
      sampleRateHz: 48000,
      channels: 1,
      startSeconds: 5,
      endSeconds: 35,
    });
    expect(toConversionOptions({ start: 0 })).toEqual({ startSeconds: 0 });
  });

  it('refuses an end that is not after the start, as a usage error', () => {
    const attempt = () => toConversionOptions({ start: 30, end: 10 });
    expect(attempt).toThrow(CliError);
    expect(attempt).toThrow('--end (10 s) must be after --start (30 s)');
    try {
      attempt();
    } catch (err) {
      expect((err as CliError).exitCode).toBe(ExitCode.USAGE);
    }
  });
});
