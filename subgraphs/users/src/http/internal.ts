import express, { type Express, type Response } from 'express';
import {
  CreateWebhookDelivery,
  InternalApi,
  serviceTokenAuth,
  WebhookAttemptReport,
  WebhookEventType,
  type CreatedWebhookDelivery,
  type UserContact,
  type UserWebhooks,
  type WebhookAttemptRecorded,
  type WebhookTarget,
} from '@vidmp3/shared';
import type { NotificationSettingsService } from '../services/notification-settings.js';
import type { WebhookService } from '../services/webhooks.js';

/**
 * The notifier's API on users: a user's address and mail settings, and webhooks (who to send an event to, the
 * delivery's record, the signing secret, how each attempt went). Service token; never routed by the gateway.
 */
export function internalRoutes(
  app: Express,
  notifications: NotificationSettingsService,
  webhooks: WebhookService,
  token: string,
): void {
  app.use('/internal', serviceTokenAuth(token));
  app.get(InternalApi.userContact.route, async (req, res) => {
    try {
      const contact = await notifications.contact(String(req.params.id));
      if (!contact) {
        res.status(404).json({ error: 'NOT_FOUND' });
        return;
      }
      res.set('cache-control', 'no-store').json(contact satisfies UserContact);
    } catch (err) {
      res.locals.log.error({ err }, 'contact lookup failed');
      res.status(500).json({ error: 'INTERNAL', requestId: res.locals.requestId });
    }
  });

  app.get(InternalApi.userWebhooks.route, async (req, res) => {
    const event = WebhookEventType.safeParse(req.query.event);
    if (!event.success) {
      res.status(400).json({ error: 'BAD_REQUEST', message: 'event: not a webhook event type' });
      return;
    }
    await answer(res, 'webhook lookup', async () => {
      res.json((await webhooks.subscribed(String(req.params.userId), event.data)) satisfies UserWebhooks);
    });
  });

  app.post(InternalApi.webhookDeliveries.route, express.json({ limit: '256kb' }), async (req, res) => {
    const body = CreateWebhookDelivery.safeParse(req.body);
    if (!body.success) {
      res.status(400).json({ error: 'BAD_REQUEST', message: body.error.message });
      return;
    }
    await answer(res, 'webhook delivery record', async () => {
      const created = await webhooks.recordDelivery(String(req.params.id), body.data);
      if (!created) return notFound(res);
      res.json(created satisfies CreatedWebhookDelivery);
    });
  });

  app.get(InternalApi.webhookTarget.route, async (req, res) => {
    await answer(res, 'webhook target lookup', async () => {
      const target = await webhooks.target(String(req.params.id));
      if (!target) return notFound(res);
      res.set('cache-control', 'no-store').json(target satisfies WebhookTarget);
    });
  });

  app.post(InternalApi.webhookAttempts.route, express.json({ limit: '64kb' }), async (req, res) => {
    const body = WebhookAttemptReport.safeParse(req.body);
    if (!body.success) {
      res.status(400).json({ error: 'BAD_REQUEST', message: body.error.message });
      return;
    }
    await answer(res, 'webhook attempt record', async () => {
      const recorded = await webhooks.recordAttempt(String(req.params.deliveryId), body.data);
      if (!recorded) return notFound(res);
      res.json(recorded satisfies WebhookAttemptRecorded);
    });
  });
}

const notFound = (res: Response) => void res.status(404).json({ error: 'NOT_FOUND' });

/** Runs a route's work; an unexpected failure is logged once here and answered 500 with the request id. */
async function answer(res: Response, what: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    res.locals.log.error({ err }, `${what} failed`);
    res.status(500).json({ error: 'INTERNAL', requestId: res.locals.requestId });
  }
}
