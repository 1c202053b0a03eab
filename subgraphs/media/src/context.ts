import type { RequestContext } from '@vidmp3/shared';
import type { MediaService } from './services/media.js';

export interface Context extends RequestContext {
  services: { media: MediaService };
}

/** A User as this subgraph knows it: only the key. */
export interface UserRef {
  id: string;
}
