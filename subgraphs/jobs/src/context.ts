import type { RequestContext } from '@vidmp3/shared';
import type { JobFeeds } from './services/job-feeds.js';
import type { JobsService } from './services/jobs.js';

export interface Context extends RequestContext {
  services: { jobs: JobsService; feeds: JobFeeds };
}

/** Entities of other subgraphs as this one knows them: only their key. */
export interface Ref {
  id: string;
}
