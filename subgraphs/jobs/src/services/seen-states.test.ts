import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../adapters/jobs-repo.js';
import { unseen } from './seen-states.js';

const job = (id: string, patch: Partial<JobRecord> = {}): JobRecord =>
  ({ id, status: 'RUNNING', progress: 0.5, updatedAt: new Date(1_000), ...patch }) as JobRecord;

describe('the states a subscription has sent', () => {
  it('lets a state through once, and again only after it changed', () => {
    const seen = unseen();
    expect(seen(job('a'))).toBe(true);
    expect(seen(job('a'))).toBe(false); // the same change, heard a second time
    expect(seen(job('a', { progress: 0.6 }))).toBe(true);
    expect(seen(job('a', { progress: 0.5 }))).toBe(true); // different from the last one sent
  });

  it('tells a change apart even within the same millisecond', () => {
    const seen = unseen();
    expect(seen(job('a'))).toBe(true);
    expect(seen(job('a', { status: 'SUCCEEDED', progress: 1 }))).toBe(true);
  });

  it('keeps jobs apart, and forgets the oldest beyond its bound (sending again, never less)', () => {
    const seen = unseen();
    expect(seen(job('a'))).toBe(true);
    expect(seen(job('b'))).toBe(true);
    expect(seen(job('a'))).toBe(false);
    for (let i = 0; i < 100; i++) seen(job(`other-${i}`));
    expect(seen(job('a'))).toBe(true);
  });
});
