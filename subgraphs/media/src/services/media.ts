import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { GraphQLError } from 'graphql';
import type { FileUpload } from 'graphql-upload-minimal';
import {
  connection,
  ErrorCode,
  pageArgs,
  requireCapability,
  Topology,
  uploadFailure,
  userError,
  type Capability,
  type MediaDeleted,
  type OutboxPublisher,
  type Viewer,
} from '@vidmp3/shared';
import type { BlobStore, ByteRange } from '../adapters/blob-store.js';
import type { DeletedAccountsRepository } from '../adapters/deleted-accounts-repo.js';
import {
  DuplicateJobOutputError,
  type MediaKind,
  type MediaRecord,
  type MediaRepository,
} from '../adapters/media-repo.js';
import { accountGone } from './account-deletion.js';
import type { DownloadLinks } from './download-links.js';
import { cleanFilename, mp3NameFor } from './filenames.js';
import { readMp3Info } from './mp3-info.js';
import type { Allowance, StorageQuotas } from './quotas.js';
import { receiveToFile } from './receive.js';

/** What probing tells us about a stored file; throws UNSUPPORTED_MEDIA for files we refuse. */
export interface Prober {
  video(path: string): Promise<{ contentType: string; durationSeconds: number | null }>;
  mp3(path: string): Promise<{ contentType: string; durationSeconds: number | null }>;
}

export interface DerivedAudio {
  jobId: string;
  ownerId: string;
  sourceMediaId: string;
}

/** Hears how each video upload ended (for the metrics). */
export interface UploadMeter {
  accepted(byteSize: number): void;
  /** `code`: the error's `extensions.code`, INTERNAL for our own failures. */
  rejected(code: string): void;
}

const noMeter: UploadMeter = { accepted: () => undefined, rejected: () => undefined };

const notFound = () => userError(ErrorCode.NOT_FOUND, 'Media not found');

/** The signed-in viewer, allowed `capability` (an API key's scopes: FORBIDDEN without it). */
function requireViewer(viewer: Viewer | null, capability: Capability = 'read'): Viewer {
  if (!viewer) throw userError(ErrorCode.UNAUTHENTICATED, 'Log in to use media');
  requireCapability(viewer, capability);
  return viewer;
}

export class MediaService {
  constructor(
    private readonly repo: MediaRepository,
    private readonly blobs: BlobStore,
    private readonly prober: Prober,
    private readonly links: DownloadLinks,
    private readonly quotas: StorageQuotas,
    private readonly options: { scratchDir: string; maxUploadBytes: number },
    /** Deleted accounts, whose writes are refused (their access tokens outlive them by minutes). */
    private readonly deletedAccounts: Pick<DeletedAccountsRepository, 'has'>,
    private readonly meter: UploadMeter = noMeter,
    /** Where media events (MediaDeleted, for webhooks) go out; none: nothing is announced (tests). */
    private readonly outbox: Pick<OutboxPublisher, 'add' | 'kick'> | null = null,
  ) {}

  /**
   * Stores an uploaded video: bytes are counted and hashed while they stream to scratch space, probed, then
   * moved into the blob store and recorded. A refused or failed upload leaves no row and no blob. The owner's
   * quotas are checked before the first byte is read (uploads in progress, storage already full) and the bytes
   * are reserved against the storage quota as they arrive, so the upload stops at the first byte too many.
   */
  async uploadVideo(viewer: Viewer | null, upload: Promise<FileUpload>): Promise<MediaRecord> {
    const { userId } = requireViewer(viewer, 'convert');
    let allowance: Allowance | undefined;
    try {
      // Refused (UNAUTHENTICATED) for a deleted account: the reservation reads its tombstone under the owner's lock.
      allowance = await this.quotas.startUpload(userId);
      const media = await this.receiveVideo(userId, upload, allowance);
      this.meter.accepted(media.byteSize);
      return media;
    } catch (err) {
      const code = err instanceof GraphQLError ? err.extensions.code : undefined;
      this.meter.rejected(typeof code === 'string' ? code : ErrorCode.INTERNAL);
      throw err;
    } finally {
      // Recorded (its bytes now count as stored) or failed: either way the reservation goes. Should the
      // database fail here, the reservation expires on its own.
      await allowance?.release().catch(() => undefined);
    }
  }

  private async receiveVideo(userId: string, upload: Promise<FileUpload>, allowance: Allowance): Promise<MediaRecord> {
    const file = await upload.catch((err: unknown) => {
      throw uploadFailure(err, this.options.maxUploadBytes);
    });
    const id = randomUUID();
    return this.store(id, file.createReadStream(), allowance, async (path, received) => ({
      id,
      ownerId: userId,
      kind: 'VIDEO',
      filename: cleanFilename(file.filename, 'video'),
      ...(await this.prober.video(path)),
      ...received,
      sourceMediaId: null,
      jobId: null,
      createdAt: new Date(),
    }));
  }

  /** One of the viewer's media; NOT_FOUND for missing and foreign ids alike. */
  async get(viewer: Viewer | null, id: string): Promise<MediaRecord> {
    const { userId } = requireViewer(viewer);
    const media = await this.repo.findById(id);
    if (!media || media.ownerId !== userId) throw notFound();
    return media;
  }

  /**
   * Entity resolution (`Job.input`, `Job.output`): null unless the viewer owns it. A deleted media still
   * resolves (its facts; its download link answers 404), so the jobs that refer to it stay readable.
   */
  async resolveReference(viewer: Viewer | null, id: string): Promise<MediaRecord | null> {
    if (!viewer) return null;
    const media = await this.repo.findIncludingDeleted(id);
    return media && media.ownerId === viewer.userId ? media : null;
  }

  async list(
    viewer: Viewer | null,
    ownerId: string,
    args: { kind?: MediaKind | null; first?: number | null; after?: string | null },
  ) {
    const { userId } = requireViewer(viewer);
    if (ownerId !== userId) throw userError(ErrorCode.NOT_FOUND, 'User not found');
    const { size, after } = pageArgs(args.first, args.after);
    const rows = await this.repo.listByOwner(userId, { kind: args.kind ?? null, after, limit: size + 1 });
    return connection(rows, size);
  }

  /** The viewer's storage and uploads (media's part of `User.usage`); NOT_FOUND for anyone else's. */
  async usage(viewer: Viewer | null, userId: string) {
    if (requireViewer(viewer).userId !== userId) throw userError(ErrorCode.NOT_FOUND, 'User not found');
    return { userId, ...(await this.quotas.usage(userId)) };
  }

  /** Deleting a media frees its bytes from the owner's storage quota (only media not deleted count). */
  async delete(viewer: Viewer | null, id: string): Promise<true> {
    requireViewer(viewer, 'convert');
    const media = await this.get(viewer, id);
    // Marked first: a crash in between leaves bytes nobody can reach (harmless), never a live row without bytes.
    // The notifier hears of it (webhooks) through the outbox, written in the transaction that marks it.
    const outbox = this.outbox;
    const event: MediaDeleted = {
      type: 'media-deleted',
      eventId: `${media.id}:deleted`,
      mediaId: media.id,
      ownerId: media.ownerId,
      at: new Date().toISOString(),
    };
    const marked = await this.repo.markDeleted(
      media.id,
      outbox
        ? (conn) => outbox.add(conn, Topology.notificationsExchange, Topology.notificationsQueue, event)
        : undefined,
    );
    if (marked) outbox?.kick();
    await this.blobs.delete(media.id);
    return true;
  }

  downloadUrl(media: MediaRecord): string {
    return this.links.url(media.id);
  }

  // ---- the internal API for converter workers (service-authenticated, never reachable through the gateway)

  /** The bytes of any media, whole or a range; NOT_FOUND when it does not exist. */
  async openContent(id: string, range?: ByteRange): Promise<{ media: MediaRecord; stream: Readable }> {
    const media = await this.repo.findById(id);
    if (!media) throw notFound();
    return { media, stream: await this.blobs.read(media.id, range) };
  }

  /** Any media by id, whoever owns it: only for the signed-link and internal routes, which authorise otherwise. */
  async findAny(id: string): Promise<MediaRecord | null> {
    return this.repo.findById(id);
  }

  /**
   * Stores a job's mp3. Idempotent per job: when the job already has an output (a redelivered or duplicated
   * job), the upload is discarded and the existing media returned, so a job never has two outputs.
   */
  async storeDerivedAudio(
    target: DerivedAudio,
    source: Readable,
    announcedBytes?: number,
  ): Promise<{ media: MediaRecord; created: boolean }> {
    const existing = await this.repo.findByJob(target.jobId);
    if (existing) {
      source.resume(); // drain: the bytes are not needed
      return { media: existing, created: false };
    }
    // The mp3 counts against its owner's storage quota like an upload (QUOTA_EXCEEDED fails the job for good);
    // a deleted account's is refused here (UNAUTHENTICATED), before its input, likely gone, is looked for.
    const allowance = await this.quotas.startOutput(target.ownerId, announcedBytes);
    try {
      const input = await this.repo.findById(target.sourceMediaId);
      if (!input || input.ownerId !== target.ownerId) throw notFound();
      const id = randomUUID();
      const media = await this.store(id, source, allowance, async (path, received) => ({
        id,
        ownerId: target.ownerId,
        kind: 'AUDIO',
        filename: mp3NameFor(input.filename),
        // Read from the Info header when it adds up (see mp3-info.ts); ffprobe for anything else.
        ...((await readMp3Info(path)) ?? (await this.prober.mp3(path))),
        ...received,
        sourceMediaId: input.id,
        jobId: target.jobId,
        createdAt: new Date(),
      }));
      return { media, created: true };
    } catch (err) {
      if (!(err instanceof DuplicateJobOutputError)) throw err;
      // Another delivery of the same job finished first: its output stands, ours is already removed.
      const winner = await this.repo.findByJob(target.jobId);
      if (!winner) throw err;
      return { media: winner, created: false };
    } finally {
      await allowance.release().catch(() => undefined);
    }
  }

  /**
   * Receive → describe (probe) → move into the store → record; cleans up everything on any failure. A write
   * that finishes after its owner's account was deleted removes itself: the tombstone is read after the row is
   * written, so either the deletion (which writes the tombstone, then lists the rows) finds the row, or this
   * finds the tombstone.
   */
  private async store(
    id: string,
    source: Readable,
    allowance: Allowance,
    describe: (path: string, received: { byteSize: number; sha256: string }) => Promise<MediaRecord>,
  ): Promise<MediaRecord> {
    const scratch = join(this.options.scratchDir, `${id}.upload`);
    let adopted = false;
    try {
      const received = await receiveToFile(source, scratch, this.options.maxUploadBytes, allowance);
      const media = await describe(scratch, received);
      await this.blobs.adopt(id, scratch);
      adopted = true;
      await this.repo.insert(media);
      if (await this.deletedAccounts.has(media.ownerId)) {
        await this.repo.remove([id]);
        throw accountGone();
      }
      return media;
    } catch (err) {
      source.destroy();
      if (adopted) await this.blobs.delete(id);
      throw err;
    } finally {
      await rm(scratch, { force: true });
    }
  }
}
