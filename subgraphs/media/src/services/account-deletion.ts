import { ErrorCode, userError, type AccountDeleted, type AccountDeletionHandler, type Logger } from '@vidmp3/shared';
import type { BlobStore } from '../adapters/blob-store.js';
import type { DeletedAccountsRepository } from '../adapters/deleted-accounts-repo.js';
import type { MediaRepository } from '../adapters/media-repo.js';
import type { QuotaRepository } from '../adapters/quota-repo.js';

/** A write for an account that has been deleted (its access tokens are still good until they expire). */
export const accountGone = () => userError(ErrorCode.UNAUTHENTICATED, 'This account has been deleted');

/** Media and blobs removed per round: a big account is removed in many short steps, never one long one. */
const DEFAULT_BATCH = 200;
/** Blobs deleted at once within a batch. */
const BLOB_CONCURRENCY = 8;

/**
 * Media's part of deleting an account (the accounts queue's AccountDeleted): the tombstone first — from then on
 * the user's uploads and job outputs are refused, and one still streaming removes itself —, then every media of
 * the user, bytes before row, batch by batch, then their storage reservations. Idempotent: a redelivery, or a
 * run cut short by a failure, carries on with what is left.
 */
export class MediaAccountDeletion implements AccountDeletionHandler {
  constructor(
    private readonly tombstones: DeletedAccountsRepository,
    private readonly media: MediaRepository,
    private readonly blobs: BlobStore,
    private readonly quotas: QuotaRepository,
    private readonly logger: Logger,
    private readonly batchSize = DEFAULT_BATCH,
  ) {}

  async accountDeleted(event: AccountDeleted): Promise<string> {
    await this.tombstones.add(event.userId, new Date(event.at));
    let removed = 0;
    for (;;) {
      const ids = await this.media.idsOfOwner(event.userId, this.batchSize);
      if (ids.length === 0) break;
      // Bytes first: a crash in between leaves rows whose bytes are gone, found again by the next delivery.
      for (let i = 0; i < ids.length; i += BLOB_CONCURRENCY) {
        await Promise.all(ids.slice(i, i + BLOB_CONCURRENCY).map((id) => this.blobs.delete(id)));
      }
      removed += await this.media.remove(ids);
      this.logger.debug({ userId: event.userId, removed }, 'removing a deleted account’s media');
    }
    await this.quotas.forgetOwner(event.userId);
    return removed === 0 ? 'nothing left' : `${removed} media removed`;
  }
}
