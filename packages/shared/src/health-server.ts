import { createServer } from 'node:http';
import { checkReadiness, listen, type ReadinessChecks } from './http.js';
import { httpDuration, metricsHandler, timeResponse, UNMATCHED_ROUTE, type Metrics } from './metrics.js';

export interface HealthServer {
  url: string;
  close(): Promise<void>;
}

const ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * For a worker that serves no API (the converter, the notifier): only
 * `/healthz` (the process answers), `/readyz` (every dependency answers; 503 naming the ones that do not) and
 * `/metrics` (Prometheus, unless disabled).
 */
export async function startHealthServer(
  host: string,
  port: number,
  readiness: ReadinessChecks,
  metrics: Metrics,
): Promise<HealthServer> {
  const scrape = metricsHandler(metrics);
  const histogram = httpDuration(metrics);
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const route = ROUTES.has(path) ? path : UNMATCHED_ROUTE;
    if (route !== '/metrics') timeResponse(histogram, req.method, res, () => route);
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, { error: 'METHOD_NOT_ALLOWED' });
    switch (route) {
      case '/healthz':
        return reply(200, { status: 'ok' });
      case '/readyz':
        void checkReadiness(readiness).then(({ ready, body }) => reply(ready ? 200 : 503, body));
        return;
      case '/metrics':
        if (metrics.enabled) return void scrape(req, res);
    }
    reply(404, { error: 'NOT_FOUND' });
  });
  const url = await listen(server, port, host);
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
