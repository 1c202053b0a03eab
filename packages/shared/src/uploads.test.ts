import { describe, expect, it, vi } from 'vitest';
import { reclaimUploadBuffers } from './uploads.js';

describe('reclaimUploadBuffers', () => {
  it('frees the buffers a stream has passed on once 8 MiB have gone through', async () => {
    const reclaim = reclaimUploadBuffers();
    // 4 MiB passed on and dropped: garbage V8 alone would not collect yet (far below its 64 MiB trigger).
    const passOn = () => Array.from({ length: 4 }, () => Buffer.alloc(1024 * 1024, 1)).length;
    passOn();
    const held = process.memoryUsage().arrayBuffers;
    reclaim(4 * 1024 * 1024);
    expect(process.memoryUsage().arrayBuffers).toBeGreaterThan(held - 1024 * 1024); // not yet: 4 MiB received
    reclaim(4 * 1024 * 1024);
    // Their memory is given back by V8's array-buffer sweeper, which may finish just after the collection.
    await vi.waitFor(() => expect(process.memoryUsage().arrayBuffers).toBeLessThan(held - 3 * 1024 * 1024));
  });
});
