import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { env, httpTimeoutSettings, loadConfig } from '@vidmp3/shared';

export const ConfigSchema = z
  .object({
    NODE_ENV: env.nodeEnv(),
    LOG_LEVEL: env.logLevel(),
    HOST: z.string().default('127.0.0.1'),
    PORT: env.port(4000),
    /** Whose X-Forwarded-For to believe (an ingress or load balancer in front), Express `trust proxy` syntax. */
    TRUST_PROXY: z.string().default('loopback'),
    /** Prometheus `/metrics`; no auth. */
    METRICS_ENABLED: env.bool(true),
    /**
     * Set → `/metrics` is served on this port only (on HOST), not on the public one, so an ingress routing
     * everything to PORT cannot expose it. Unset → on PORT, for one machine.
     */
    METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
    /** The composed supergraph, committed at the repository root (`npm run compose` regenerates it). */
    SUPERGRAPH_PATH: z.string().default(fileURLToPath(new URL('../../supergraph.graphql', import.meta.url))),
    /** Where each subgraph really is; unset → the routing URL written in the supergraph. */
    SUBGRAPH_USERS_URL: z.url().optional(),
    SUBGRAPH_MEDIA_URL: z.url().optional(),
    SUBGRAPH_JOBS_URL: z.url().optional(),
    /**
     * Browser origins allowed to call the API (CORS on /graphql, credentials off) and to open a subscription
     * WebSocket (`*`: any); unset → the gateway's own.
     */
    ALLOWED_ORIGINS: env
      .list()
      .refine(
        (origins) => origins.every((o) => o === '*' || URL.canParse(o)),
        'expected * or origins like https://app.example',
      ),
    JWKS_URL: env.url('http://127.0.0.1:4001/.well-known/jwks.json'),
    JWT_ISSUER: z.string().min(1).default('vidmp3'),
    JWT_AUDIENCE: z.string().min(1).default('vidmp3-api'),
    /** Schema introspection and the GraphQL playground; default on in development, off in production. */
    INTROSPECTION: env.optionalBool(),
    PLAYGROUND: env.optionalBool(),
    /** The browser doors' build (the page at `/`, the playground at `/playground`); missing → API only. */
    WEB_DIR: z.string().default(fileURLToPath(new URL('../../web/dist', import.meta.url))),
    /** Operation limits, enforced before any subgraph is called. */
    MAX_DEPTH: z.coerce.number().int().positive().default(10),
    MAX_ALIASES: z.coerce.number().int().nonnegative().default(15),
    /** List-aware: each field × the items its lists may return (limits.ts); the SDK's largest query costs 2,901. */
    MAX_COST: z.coerce.number().int().positive().default(5_000),
    MAX_TOKENS: z.coerce.number().int().positive().default(2_000),
    MAX_DIRECTIVES: z.coerce.number().int().nonnegative().default(20),
    /**
     * WebSocket (subscription) limits, counted by each gateway process on its own (per replica: N replicas
     * allow N times as much). Over a connection limit the socket is closed with 4429; over the subscription
     * limit a subscribe is answered with QUOTA_EXCEEDED (quota `subscriptions`).
     */
    MAX_WS_CONNECTIONS_PER_USER: z.coerce.number().int().positive().default(10),
    /** Every socket from one address (IPv6: one /64) counts, signed in or not, authenticated yet or not. */
    MAX_WS_CONNECTIONS_PER_IP: z.coerce.number().int().positive().default(50),
    /** Active subscriptions of one user across all their sockets (anonymous ones: per address). */
    MAX_SUBSCRIPTIONS_PER_USER: z.coerce.number().int().positive().default(20),
    /** Active subscriptions of every user at one address (IPv6: one /64) together. */
    MAX_SUBSCRIPTIONS_PER_IP: z.coerce.number().int().positive().default(100),
    /**
     * WebSocket connections from this gateway to jobs, shared by every client's subscriptions (each upstream
     * subscription carries its caller's token); more than one spreads a gateway's load over jobs replicas.
     */
    SUBSCRIPTION_UPSTREAM_SOCKETS: z.coerce.number().int().min(1).max(64).default(1),
    /**
     * The subgraph client (subgraph-client.ts): keep-alive sockets per subgraph, at most this many; an idle one
     * is closed after SUBGRAPH_IDLE_TIMEOUT_SECONDS, which must stay below the servers' keep-alive timeout
     * (65 s, shared http.ts) so that a server never closes a socket the gateway is about to reuse.
     */
    SUBGRAPH_MAX_SOCKETS: z.coerce.number().int().positive().default(64),
    SUBGRAPH_IDLE_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(60).default(30),
    /** A subgraph request whose whole answer has not arrived after this long fails. */
    SUBGRAPH_TIMEOUT_SECONDS: z.coerce.number().int().positive().default(30),
    /** Identical concurrent queries of one viewer to one subgraph share one request (never mutations). */
    SUBGRAPH_DEDUPE: env.bool(true),
    /** After SIGTERM: how long uploads, downloads and queries in flight may still take. */
    SHUTDOWN_GRACE_SECONDS: env.shutdownGrace(),
    /**
     * API keys' exchanged access tokens remembered (LRU, by the key's sha256) until a minute before they expire
     * (gateway/src/api-keys.ts); 0 exchanges on every request.
     */
    API_KEY_CACHE_SIZE: z.coerce.number().int().min(0).default(10_000),
    /** Largest upload accepted; media enforces the same limit while it streams. */
    MAX_UPLOAD_BYTES: z.coerce
      .number()
      .int()
      .positive()
      .default(2 * 1024 ** 3),
    /** How long request bodies (uploads) may take: a base time, a minimum rate, an idle limit. */
    ...httpTimeoutSettings,
  })
  .transform((c) => ({
    ...c,
    INTROSPECTION: c.INTROSPECTION ?? c.NODE_ENV !== 'production',
    PLAYGROUND: c.PLAYGROUND ?? c.NODE_ENV !== 'production',
    ALLOWED_ORIGINS:
      c.ALLOWED_ORIGINS.length > 0 ? c.ALLOWED_ORIGINS : [`http://127.0.0.1:${c.PORT}`, `http://localhost:${c.PORT}`],
    subgraphUrls: new Map<string, string | undefined>([
      ['users', c.SUBGRAPH_USERS_URL],
      ['media', c.SUBGRAPH_MEDIA_URL],
      ['jobs', c.SUBGRAPH_JOBS_URL],
    ]),
  }));

export type Config = z.output<typeof ConfigSchema>;

export const readConfig = (): Config => loadConfig(ConfigSchema, process.env, 'gateway');
