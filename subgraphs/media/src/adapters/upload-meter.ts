import { boundedLabel, type Metrics } from '@vidmp3/shared';
import type { UploadMeter } from '../services/media.js';

const MiB = 1024 ** 2;

/** `vidmp3_uploads_total{outcome,code}` and `vidmp3_upload_bytes` (accepted uploads' sizes). */
export function uploadMeter(metrics: Metrics): UploadMeter {
  const uploads = metrics.counter({
    name: 'vidmp3_uploads_total',
    help: 'Video uploads by outcome (accepted, rejected) and, for rejections, the error code',
    labelNames: ['outcome', 'code'],
  });
  const bytes = metrics.histogram({
    name: 'vidmp3_upload_bytes',
    help: 'Sizes of accepted video uploads, in bytes (its _sum: bytes stored)',
    buckets: [MiB / 16, MiB / 4, MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB, 1024 * MiB, 2048 * MiB],
  });
  const code = boundedLabel(30);
  return {
    accepted(byteSize) {
      uploads.inc({ outcome: 'accepted' });
      bytes.observe(byteSize);
    },
    rejected(errorCode) {
      uploads.inc({ outcome: 'rejected', code: code(errorCode) });
    },
  };
}
