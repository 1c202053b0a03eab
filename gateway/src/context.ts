import type { RequestContext } from '@vidmp3/shared';

/** The gateway's per-request context: who is calling (verified once here), for forwarding. */
export type GatewayContext = RequestContext;
