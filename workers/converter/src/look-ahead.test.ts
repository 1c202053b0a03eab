import { describe, expect, it } from 'vitest';
import { EndEstimate } from './look-ahead.js';

describe('EndEstimate', () => {
  it('does not guess before the first conversion', () => {
    expect(new EndEstimate(1000).endsSoonAtStart(1)).toBe(false);
  });

  it('expects a short output to end soon at the pace of the last conversions', () => {
    const estimate = new EndEstimate(1000);
    estimate.learn(12, 180); // 15 ms per second of output
    expect(estimate.endsSoonAtStart(12)).toBe(true);
    expect(estimate.endsSoonAtStart(60)).toBe(true);
    expect(estimate.endsSoonAtStart(600)).toBe(false);
  });

  it('moves halfway towards each new pace', () => {
    const estimate = new EndEstimate(1000);
    estimate.learn(10, 100); // 10 ms/s
    estimate.learn(10, 300); // 30 ms/s → 20 ms/s
    expect(estimate.endsSoonAtStart(50)).toBe(true); // 1000 ms
    expect(estimate.endsSoonAtStart(51)).toBe(false);
  });

  it('judges a running conversion by its own pace', () => {
    const estimate = new EndEstimate(1000);
    expect(estimate.endsSoon(0.5, 4000)).toBe(false); // 4 s to go
    expect(estimate.endsSoon(0.9, 4000)).toBe(true); // ~0.44 s to go
    expect(estimate.endsSoon(0, 4000)).toBe(false);
  });

  it('never looks ahead with a window of 0 unless the conversion is done', () => {
    const estimate = new EndEstimate(0);
    estimate.learn(12, 180);
    expect(estimate.endsSoonAtStart(12)).toBe(false);
    expect(estimate.endsSoon(0.99, 1000)).toBe(false);
    expect(estimate.endsSoon(1, 1000)).toBe(true);
  });

  it('ignores runs it cannot learn from', () => {
    const estimate = new EndEstimate(1000);
    estimate.learn(0, 100);
    estimate.learn(Number.NaN, 100);
    expect(estimate.endsSoonAtStart(1)).toBe(false);
  });
});
