import { randomUUID } from 'node:crypto';
import { quotaExceeded } from '@vidmp3/shared';
import { AccountDeletedError } from '../adapters/deleted-accounts-repo.js';
import type { QuotaRepository, Refusal, ReservationKind } from '../adapters/quota-repo.js';
import { accountGone } from './account-deletion.js';
import { formatBytes } from './receive.js';

export interface QuotaLimits {
  /** Bytes one owner may store: uploaded videos and converted mp3s not deleted. */
  storageBytes: number;
  /** Uploads one owner may have streaming in at once, across every media replica. */
  concurrentUploads: number;
  /** How long a write's reservation outlives its last sign of life (a replica that died stops counting). */
  reservationTtlMs: number;
  /**
   * Bytes reserved ahead of what has arrived (32 MiB), so a big upload asks the database once per this many, and
   * asks again in the background when half of them are used (see `covers`).
   */
  reserveAheadBytes?: number;
}

/**
 * Room for one write (an upload or a job's output) within its owner's storage quota. Bytes are reserved as
 * they arrive (`ensure`), so parallel writes of one owner — on any replica — cannot together pass the quota;
 * `release` once the media row is recorded (or the write failed).
 */
export interface Allowance {
  /** Resolves once `totalBytes` fit the owner's quota; QUOTA_EXCEEDED ('storageBytes') when they do not. */
  ensure(totalBytes: number): Promise<void>;
  /**
   * Synchronous fast path: whether `totalBytes` are already held (no database round trip needed). Past half of
   * the read-ahead it also asks for more room in the background, so a steady stream need not wait for `ensure`.
   */
  covers(totalBytes: number): boolean;
  release(): Promise<void>;
}

const DEFAULT_RESERVE_AHEAD_BYTES = 32 * 1024 ** 2;

/** The per-owner storage and upload limits; the decisions are made under a database lock (QuotaRepository). */
export class StorageQuotas {
  constructor(
    private readonly repo: QuotaRepository,
    readonly limits: QuotaLimits,
  ) {}

  /** Before an upload's first byte is read: refused when the owner is at the storage quota or uploading enough. */
  startUpload(ownerId: string): Promise<Allowance> {
    return this.start(ownerId, 'UPLOAD', 0);
  }

  /** Before a job's output is stored; `announcedBytes` (its Content-Length) lets an output that cannot fit be refused unread. */
  startOutput(ownerId: string, announcedBytes = 0): Promise<Allowance> {
    return this.start(ownerId, 'OUTPUT', announcedBytes);
  }

  async usage(ownerId: string) {
    const { storedBytes, uploadsInProgress } = await this.repo.usage(ownerId);
    return {
      storageBytes: storedBytes,
      storageLimitBytes: this.limits.storageBytes,
      uploadsInProgress,
      concurrentUploadsLimit: this.limits.concurrentUploads,
    };
  }

  private async start(ownerId: string, kind: ReservationKind, announcedBytes: number): Promise<Allowance> {
    const id = randomUUID();
    const { limits, repo } = this;
    const reserve = async (neededBytes: number) => {
      const result = await repo
        .reserve({
          id,
          ownerId,
          kind,
          neededBytes,
          aheadBytes: limits.reserveAheadBytes ?? DEFAULT_RESERVE_AHEAD_BYTES,
          storageLimitBytes: limits.storageBytes,
          concurrentUploadsLimit: kind === 'UPLOAD' ? limits.concurrentUploads : null,
          ttlMs: limits.reservationTtlMs,
        })
        .catch((err: unknown) => {
          // The owner's account was deleted meanwhile: the write stops here (UNAUTHENTICATED).
          throw err instanceof AccountDeletedError ? accountGone() : err;
        });
      if ('quota' in result) throw this.refusal(result, kind);
      return result.reservedBytes;
    };

    let held = await reserve(announcedBytes);
    let released = false;
    // One request for more room at a time: a read-ahead started by `covers`, or the one `ensure` waits for.
    let growing: Promise<void> | undefined;
    let readAheadFor = -1;
    const grow = (neededBytes: number) => {
      growing ??= reserve(neededBytes)
        .then((bytes) => {
          held = Math.max(held, bytes);
        })
        .finally(() => {
          growing = undefined;
        });
      return growing;
    };
    // A slow upload may not ask for bytes for a while: keep its reservation alive meanwhile.
    const timer = setInterval(
      () => {
        repo.keepAlive(id, limits.reservationTtlMs).catch(() => undefined);
      },
      Math.max(1_000, limits.reservationTtlMs / 3),
    );
    timer.unref();
    const aheadBytes = limits.reserveAheadBytes ?? DEFAULT_RESERVE_AHEAD_BYTES;

    return {
      covers(totalBytes) {
        // Half of the room held ahead is used: ask for more now, in the background, so that the stream does not
        // wait for the database when it gets there. It asks for what is already held (always granted while held),
        // plus the read-ahead; once per amount held, so a write near the limit, granted nothing more, does not
        // ask again at every chunk (it then waits in `ensure`, which gives the verdict).
        if (!released && held > 0 && totalBytes > held - aheadBytes / 2 && readAheadFor !== held && !growing) {
          readAheadFor = held;
          grow(held).catch(() => undefined);
        }
        return totalBytes <= held;
      },
      async ensure(totalBytes) {
        while (totalBytes > held) {
          // A read-ahead in flight may bring enough; whatever it brought, the loop asks again for what is missing.
          if (growing) await growing.catch(() => undefined);
          else await grow(totalBytes);
        }
      },
      async release() {
        if (released) return;
        released = true;
        clearInterval(timer);
        // A read-ahead still in flight would otherwise write the reservation back after it is deleted.
        await growing?.catch(() => undefined);
        await repo.release(id);
      },
    };
  }

  private refusal(refusal: Refusal, kind: ReservationKind) {
    const { limits } = this;
    if (refusal.quota === 'concurrentUploads') {
      return quotaExceeded(
        'concurrentUploads',
        limits.concurrentUploads,
        refusal.used,
        `You already have ${refusal.used} uploads in progress, the most at once (${limits.concurrentUploads}); try again when one has finished`,
      );
    }
    const what = kind === 'UPLOAD' ? 'This upload' : 'The converted audio';
    return quotaExceeded(
      'storageBytes',
      limits.storageBytes,
      refusal.used,
      `${what} would take you over your storage quota of ${formatBytes(limits.storageBytes)} (${formatBytes(refusal.used)} in use); delete some media to make room`,
    );
  }
}
