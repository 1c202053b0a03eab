import { ErrorCode, InternalApi, MediaFacts, userError } from '@vidmp3/shared';

export type { MediaFacts };

/** media's internal API, as jobs uses it: the facts about one media (null when it does not exist). */
export class MediaClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async get(id: string, requestId?: string): Promise<MediaFacts | null> {
    const res = await fetch(new URL(InternalApi.mediaFacts.path(id), this.baseUrl), {
      headers: { authorization: `Bearer ${this.token}`, ...(requestId ? { 'x-request-id': requestId } : {}) },
      signal: AbortSignal.timeout(5_000),
    });
    if (res.status === 404) return null;
    if (res.status === 503) {
      throw userError(ErrorCode.SERVICE_UNAVAILABLE, 'The media service is unavailable right now; try again shortly');
    }
    if (!res.ok) throw new Error(`media answered ${res.status} for a media lookup`);
    return MediaFacts.parse(await res.json());
  }
}
