import { describe, expect, it } from 'vitest';
import { reclaimUploadBuffers } from './uploads.js';

describe('reclaimUploadBuffers', () => {
  it('frees the buffers a stream has passed on once 8 MiB have gone through', () => {
    const reclaim = reclaimUploadBuffers();
    let passedOn: Buffer[] | null = Array.from({ length: 4 }, () => Buffer.alloc(1024 * 1024, 1));
    const held = process.memoryUsage().arrayBuffers;
    passedOn = null;
    reclaim(4 * 1024 * 1024);
    expect(process.memoryUsage().arrayBuffers).toBeGreaterThan(held - 1024 * 1024); // not yet: 4 MiB received
    reclaim(4 * 1024 * 1024);
    expect(process.memoryUsage().arrayBuffers).toBeLessThan(held - 3 * 1024 * 1024);
  });
});
