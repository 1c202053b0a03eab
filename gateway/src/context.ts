import type { RequestContext } from '@vidmp3/shared';
import type { CarriedJob } from './subscriptions/carry.js';

/** The gateway's per-request context: who is calling (verified once here), for forwarding. */
export interface GatewayContext extends RequestContext {
  /** Aborted when the client goes away before the response is sent: in-flight uploads to media stop. */
  signal: AbortSignal;
  /**
   * A subscription event's jobs fields, for the per-event query it runs: the jobs fetch that matches them is
   * answered from the event rather than sent to jobs (datasource.ts, subscriptions/carry.ts).
   */
  carried?: CarriedJob;
}
