import { describe, expect, it } from 'vitest';
import { ProgressThrottle, expectedSeconds, progressFraction, timemarkToSeconds } from './progress.js';

describe('timemarkToSeconds', () => {
  it('reads ffmpeg time marks', () => {
    expect(timemarkToSeconds('00:00:03.00')).toBe(3);
    expect(timemarkToSeconds('01:02:03.50')).toBe(3723.5);
    expect(timemarkToSeconds('-00:00:00.02')).toBe(-0.02);
  });

  it('gives NaN for anything that is not a time', () => {
    expect(timemarkToSeconds('N/A')).toBeNaN();
    expect(timemarkToSeconds('')).toBeNaN();
  });
});

describe('expectedSeconds', () => {
  it('is the whole input without trims', () => {
    expect(expectedSeconds({ durationSeconds: 90 })).toBe(90);
  });

  it('is the trimmed span with start and end', () => {
    expect(expectedSeconds({ durationSeconds: 90, startSeconds: 10, endSeconds: 40 })).toBe(30);
    expect(expectedSeconds({ durationSeconds: 90, startSeconds: 60, endSeconds: null })).toBe(30);
    expect(expectedSeconds({ durationSeconds: 90, startSeconds: null, endSeconds: 20 })).toBe(20);
  });

  it('never runs past the input or the cap, nor below zero', () => {
    expect(expectedSeconds({ durationSeconds: 90, endSeconds: 500 })).toBe(90);
    expect(expectedSeconds({ durationSeconds: 90, maxSeconds: 60 })).toBe(60);
    expect(expectedSeconds({ durationSeconds: 90, startSeconds: 100 })).toBe(0);
  });
});

describe('progressFraction', () => {
  it('is the share done, clamped to 0..1', () => {
    expect(progressFraction(15, 60)).toBe(0.25);
    expect(progressFraction(61, 60)).toBe(1);
    expect(progressFraction(-0.02, 60)).toBe(0);
  });

  it('is 0 when nothing can be measured', () => {
    expect(progressFraction(Number.NaN, 60)).toBe(0);
    expect(progressFraction(5, 0)).toBe(0);
  });
});

describe('ProgressThrottle', () => {
  function throttle() {
    let now = 0;
    const t = new ProgressThrottle({ now: () => now });
    return { offer: (p: number) => t.offer(p), advance: (ms: number) => (now += ms) };
  }

  it('reports the first value', () => {
    expect(throttle().offer(0.01)).toBe(true);
  });

  it('holds back small steps within a second', () => {
    const t = throttle();
    t.offer(0.1);
    t.advance(400);
    expect(t.offer(0.12)).toBe(false);
    t.advance(400);
    expect(t.offer(0.14)).toBe(false);
  });

  it('reports a small step once a second has passed', () => {
    const t = throttle();
    t.offer(0.1);
    t.advance(1000);
    expect(t.offer(0.11)).toBe(true);
  });

  it('reports a step of 5 % at once', () => {
    const t = throttle();
    t.offer(0.1);
    t.advance(100);
    expect(t.offer(0.15)).toBe(true);
  });

  it('never reports a value that does not move forward', () => {
    const t = throttle();
    t.offer(0.5);
    t.advance(5000);
    expect(t.offer(0.5)).toBe(false);
    expect(t.offer(0.4)).toBe(false);
  });

  it('keeps a fast stream of reports to one a second or one per 5 %', () => {
    const t = throttle();
    let reported = 0;
    // 60 s at ten reports a second, progressing 0.1 % each time: 60 % in all.
    for (let i = 1; i <= 600; i++) {
      t.advance(100);
      if (t.offer(i / 1000)) reported++;
    }
    expect(reported).toBeLessThanOrEqual(61);
    expect(reported).toBeGreaterThanOrEqual(55);
  });
});
