import type { RequestContext } from '@vidmp3/shared';

/** The gateway's per-request context: who is calling (verified once here), for forwarding. */
export interface GatewayContext extends RequestContext {
  /** Aborted when the client goes away before the response is sent: in-flight uploads to media stop. */
  signal: AbortSignal;
}
