import { describe, expect, it } from 'vitest';
import { addressKey, SlotCounter } from './support.js';

describe('addressKey', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.0.0.7', '10.0.0.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:ffff::', '2001:db8:1:2::/64'],
    ['2001:DB8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['unknown', 'unknown'],
  ])('counts %s as %s', (address, key) => {
    expect(addressKey(address)).toBe(key);
  });
});

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
