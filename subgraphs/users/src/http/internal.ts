import type { Express } from 'express';
import { InternalApi, serviceTokenAuth, type Logger, type UserContact } from '@vidmp3/shared';
import type { NotificationSettingsService } from '../services/notification-settings.js';

/**
 * The notifier's API on users: a user's address and mail settings. Service token; never routed by the gateway.
 * Without a token (production left unconfigured) it answers 503, which the notifier waits out, rather than
 * anything it could take for "no such user".
 */
export function internalRoutes(
  app: Express,
  notifications: NotificationSettingsService,
  token: string | undefined,
  logger: Logger,
): void {
  if (!token) {
    logger.warn('INTERNAL_API_TOKEN is not set: the internal API is closed, and the notifier waits for it');
    app.use('/internal', (_req, res) => {
      res.status(503).json({ error: 'SERVICE_UNAVAILABLE', message: 'INTERNAL_API_TOKEN is not set on users' });
    });
    return;
  }
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
}
