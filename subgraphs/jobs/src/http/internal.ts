import express, { type Express } from 'express';
import { ClaimRequest, InternalApi, serviceTokenAuth, type ClaimResponse } from '@vidmp3/shared';
import type { JobsService } from '../services/jobs.js';

/** The converter workers' API on jobs: claim an attempt before starting it. Service token; not routed publicly. */
export function internalRoutes(app: Express, jobs: JobsService, token: string): void {
  app.use('/internal', serviceTokenAuth(token));
  app.post(InternalApi.claim.route, express.json({ limit: '16kb' }), async (req, res) => {
    const body = ClaimRequest.safeParse(req.body);
    if (!body.success) {
      res.status(400).json({ error: 'BAD_REQUEST', message: body.error.message });
      return;
    }
    try {
      const result = await jobs.claim(
        String(req.params.id),
        body.data.attempt,
        body.data.workerId,
        body.data.redelivered,
      );
      if (!result) {
        res.status(404).json({ proceed: false, reason: 'no such job' } satisfies ClaimResponse);
        return;
      }
      res.json(result satisfies ClaimResponse);
    } catch (err) {
      res.locals.log.error({ err }, 'claim failed');
      res.status(500).json({ error: 'INTERNAL', requestId: res.locals.requestId });
    }
  });
}
