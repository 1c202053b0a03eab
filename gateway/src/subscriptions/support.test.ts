import { describe, expect, it } from 'vitest';
import { SlotCounter } from './support.js';

describe('SlotCounter', () => {
  it('refuses at the limit, frees a slot on release once, and forgets keys at zero', () => {
    const counter = new SlotCounter(2);
    const first = counter.acquire('alice');
    const second = counter.acquire('alice');
    expect(first && second).toBeTruthy();
    expect(counter.acquire('alice')).toBeUndefined();
    expect(counter.acquire('bob')).toBeTruthy();

    first?.();
    first?.(); // a second release gives nothing back twice
    expect(counter.used('alice')).toBe(1);
    expect(counter.acquire('alice')).toBeTruthy();
    expect(counter.acquire('alice')).toBeUndefined();
  });
});
