import { createHmac, timingSafeEqual } from 'node:crypto';

export type LinkCheck = { ok: true; mediaId: string } | { ok: false; reason: 'expired' | 'invalid' };

/**
 * Short-lived signed download URLs: `/files/<id>?expires=<unix s>&sig=<HMAC-SHA256(id.expires)>`. Only the
 * owner can obtain one (through `Media.downloadUrl`); whoever holds it can GET it until it expires, so a
 * browser or curl can download without a token.
 */
export class DownloadLinks {
  constructor(
    private readonly key: Buffer,
    private readonly publicUrl: string,
    private readonly ttlSeconds: number,
  ) {}

  url(mediaId: string, now = Date.now()): string {
    const expires = Math.floor(now / 1000) + this.ttlSeconds;
    const url = new URL(`/files/${encodeURIComponent(mediaId)}`, this.publicUrl);
    url.searchParams.set('expires', String(expires));
    url.searchParams.set('sig', this.sign(mediaId, expires));
    return url.toString();
  }

  check(mediaId: string, expires: unknown, sig: unknown, now = Date.now()): LinkCheck {
    if (typeof expires !== 'string' || typeof sig !== 'string' || !/^\d{1,12}$/.test(expires)) {
      return { ok: false, reason: 'invalid' };
    }
    const expected = Buffer.from(this.sign(mediaId, Number(expires)));
    const given = Buffer.from(sig);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'invalid' };
    if (Number(expires) * 1000 < now) return { ok: false, reason: 'expired' };
    return { ok: true, mediaId };
  }

  private sign(mediaId: string, expires: number): string {
    return createHmac('sha256', this.key).update(`${mediaId}.${expires}`).digest('base64url');
  }
}
