import type { Express } from 'express';
import { ApiKeyExchange, type ApiKeyTokenResponse } from '@vidmp3/shared';
import { ExchangeRefused, type ApiKeyService } from '../services/api-keys.js';

/**
 * The gateway's exchange of an API key for an access token (ApiKeyExchange in the shared library). The key is
 * the credential: no service token. Not routed by the gateway's public API; the client address counted for
 * failures is the one the gateway forwards (`x-forwarded-for`, believed from TRUST_PROXY addresses only).
 */
export function apiKeyRoutes(app: Express, apiKeys: ApiKeyService): void {
  app.post(ApiKeyExchange.route, async (req, res) => {
    res.set('cache-control', 'no-store');
    const match = /^Bearer (\S+)$/i.exec(req.header('authorization')?.trim() ?? '');
    try {
      const issued = await apiKeys.exchange(match?.[1] ?? '', req.ip ?? '');
      res.json({
        accessToken: issued.accessToken,
        expiresAt: issued.expiresAt.toISOString(),
      } satisfies ApiKeyTokenResponse);
    } catch (err) {
      if (err instanceof ExchangeRefused) {
        if (err.retryAfterSeconds !== undefined) res.set('retry-after', String(err.retryAfterSeconds));
        res
          .status(err.status)
          .json({ error: err.status === 401 ? 'UNAUTHENTICATED' : 'RATE_LIMITED', message: err.message });
        return;
      }
      res.locals.log.error({ err }, 'API key exchange failed');
      res.status(500).json({ error: 'INTERNAL', requestId: res.locals.requestId });
    }
  });
}
