import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { validateOptions, type OptionsInput } from './options.js';

const DURATION = 10;

/** The error validateOptions throws for this input; fails the test if it accepts it. */
function rejection(input: OptionsInput, durationSeconds = DURATION): GraphQLError {
  try {
    validateOptions(input, durationSeconds);
  } catch (err) {
    expect(err).toBeInstanceOf(GraphQLError);
    return err as GraphQLError;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

function expectRefused(input: OptionsInput, field: keyof OptionsInput, durationSeconds = DURATION): void {
  const error = rejection(input, durationSeconds);
  expect(error.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
  expect(error.message).toContain(field);
}

describe('validateOptions', () => {
  describe('defaults', () => {
    it.each([
      ['no options', undefined],
      ['null options', null],
      ['an empty object', {}],
      [
        'every field null',
        { bitrateKbps: null, sampleRateHz: null, channels: null, startSeconds: null, endSeconds: null },
      ],
    ])('converts at 192 kbps, keeping the input sample rate, channels and full length, given %s', (_, input) => {
      expect(validateOptions(input, DURATION)).toEqual({
        bitrateKbps: 192,
        sampleRateHz: null,
        channels: null,
        startSeconds: null,
        endSeconds: null,
      });
    });

    it('keeps every valid option as given', () => {
      expect(
        validateOptions(
          { bitrateKbps: 320, sampleRateHz: 44100, channels: 1, startSeconds: 1.5, endSeconds: 9.25 },
          DURATION,
        ),
      ).toEqual({ bitrateKbps: 320, sampleRateHz: 44100, channels: 1, startSeconds: 1.5, endSeconds: 9.25 });
    });
  });

  describe('bitrateKbps', () => {
    it.each([32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320])(
      'accepts the MPEG layer III bitrate %i kbps',
      (bitrateKbps) => {
        expect(validateOptions({ bitrateKbps }, DURATION).bitrateKbps).toBe(bitrateKbps);
      },
    );

    it.each([0, -128, 8, 31, 33, 100, 127, 128.5, 192.5, 321, 384, 1000, Number.NaN, Number.POSITIVE_INFINITY])(
      'refuses %s kbps, naming the field',
      (bitrateKbps) => {
        expectRefused({ bitrateKbps }, 'bitrateKbps');
      },
    );
  });

  describe('sampleRateHz', () => {
    it.each([8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000])(
      'accepts the MPEG audio sample rate %i Hz',
      (sampleRateHz) => {
        expect(validateOptions({ sampleRateHz }, DURATION).sampleRateHz).toBe(sampleRateHz);
      },
    );

    it.each([0, -44100, 1, 7999, 44000, 44100.5, 88200, 96000, 192000, Number.NaN])(
      'refuses %s Hz, naming the field',
      (sampleRateHz) => {
        expectRefused({ sampleRateHz }, 'sampleRateHz');
      },
    );
  });

  describe('channels', () => {
    it.each([1, 2])('accepts %i channel(s)', (channels) => {
      expect(validateOptions({ channels }, DURATION).channels).toBe(channels);
    });

    it.each([0, -1, 1.5, 3, 6, 8, Number.NaN])('refuses %s channels, naming the field', (channels) => {
      expectRefused({ channels }, 'channels');
    });
  });

  describe('startSeconds', () => {
    it.each([0, 0.001, 5, 9.999])('accepts a start at %s s of a 10 s video', (startSeconds) => {
      expect(validateOptions({ startSeconds }, DURATION).startSeconds).toBe(startSeconds);
    });

    it.each([
      ['a negative start', -0.001],
      ['a start at the very end', DURATION],
      ['a start past the end', DURATION + 1],
      ['a start inside the end tolerance', DURATION + 0.01],
      ['NaN', Number.NaN],
      ['infinity', Number.POSITIVE_INFINITY],
      ['minus infinity', Number.NEGATIVE_INFINITY],
    ])('refuses %s, naming the field', (_, startSeconds) => {
      expectRefused({ startSeconds }, 'startSeconds');
    });
  });

  describe('endSeconds', () => {
    it.each([
      ['just after the start', { startSeconds: 2, endSeconds: 2.001 }],
      ['without a start, just after 0', { endSeconds: 0.001 }],
      ['at the duration', { endSeconds: DURATION }],
      ['0.05 s past the duration (container and stream durations differ slightly)', { endSeconds: DURATION + 0.05 }],
      ['0.05 s past the duration, after a start', { startSeconds: 9.99, endSeconds: DURATION + 0.05 }],
    ])('accepts an end %s', (_, input) => {
      expect(validateOptions(input, DURATION)).toMatchObject(input);
    });

    it.each([
      ['at the start', { startSeconds: 3, endSeconds: 3 }],
      ['before the start', { startSeconds: 3, endSeconds: 2.5 }],
      ['at 0 without a start', { endSeconds: 0 }],
      ['negative', { endSeconds: -1 }],
      ['more than 0.05 s past the duration', { endSeconds: DURATION + 0.051 }],
      ['far past the duration', { startSeconds: 1, endSeconds: DURATION * 2 }],
      ['NaN', { endSeconds: Number.NaN }],
      ['infinite', { endSeconds: Number.POSITIVE_INFINITY }],
    ])('refuses an end %s, naming the field', (_, input) => {
      expectRefused(input, 'endSeconds');
    });

    it('measures the 0.05 s tolerance against the video it is given', () => {
      expect(validateOptions({ endSeconds: 60.05 }, 60).endSeconds).toBe(60.05);
      expectRefused({ endSeconds: 60.06 }, 'endSeconds', 60);
    });
  });

  describe('errors', () => {
    it('reports a user error with code BAD_USER_INPUT and the field in its extensions', () => {
      const error = rejection({ channels: 5 });
      expect(error).toBeInstanceOf(GraphQLError);
      expect(error.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'channels' });
    });

    it('tells the client the duration a trim must fit in', () => {
      expect(rejection({ endSeconds: 99 }, 42.5).message).toContain('42.5');
      expect(rejection({ startSeconds: 50 }, 42.5).message).toContain('42.5');
    });

    it('refuses an invalid start even when the end is valid, and names the start', () => {
      expectRefused({ startSeconds: -1, endSeconds: 5 }, 'startSeconds');
    });
  });
});
