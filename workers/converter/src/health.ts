import { createServer } from 'node:http';
import { listen } from '@vidmp3/shared';

export interface HealthServer {
  url: string;
  close(): Promise<void>;
}

/** `/healthz`: the process answers. `/readyz`: connected to RabbitMQ and taking work. No other routes. */
export async function startHealthServer(host: string, port: number, isReady: () => boolean): Promise<HealthServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, { error: 'METHOD_NOT_ALLOWED' });
    if (path === '/healthz') return reply(200, { status: 'ok' });
    if (path === '/readyz') {
      const ready = isReady();
      return reply(ready ? 200 : 503, { status: ready ? 'ready' : 'unavailable' });
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
