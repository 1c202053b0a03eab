import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import type { Express, NextFunction, Request, Response } from 'express';
import { Kind, type FieldNode, type OperationDefinitionNode } from 'graphql';
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
} from 'prom-client';
import { listen, withTimeout } from './http.js';

export type { Counter, Gauge, Histogram };

/** Route label of requests no route matched: raw paths would give every scanner's URL a time series. */
export const UNMATCHED_ROUTE = 'unmatched';
/** Label value once a label has seen its cap of distinct values. */
export const OVERFLOW_LABEL = 'other';

const MAX_ROUTES = 100;
const MAX_ROOT_FIELDS = 100;
const MAX_ERROR_CODES = 50;
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const GRAPHQL_NAME = /^[_A-Za-z][_0-9A-Za-z]{0,99}$/;

/** Seconds, from a fast cache hit to a long upload or download. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

type Config<L extends string> = { name: string; help: string; labelNames?: readonly L[] };

/**
 * One process's metrics: a registry of its own (so several services can share a test process), the
 * `service` label on every series, and Node's default process metrics. Instruments are get-or-create by
 * name, so any module can ask for the one it records to.
 */
export class Metrics {
  readonly registry = new Registry();
  /** False: nothing is served (`METRICS_ENABLED=false`) and no default metrics are sampled. */
  readonly enabled: boolean;

  constructor(
    readonly service: string,
    options: { enabled?: boolean } = {},
  ) {
    this.enabled = options.enabled ?? true;
    this.registry.setDefaultLabels({ service });
    if (this.enabled) collectDefaultMetrics({ register: this.registry });
  }

  counter<L extends string>(config: Config<L> & Pick<CounterConfiguration<L>, 'collect'>): Counter<L> {
    return this.existing<Counter<L>>(config.name) ?? new Counter<L>({ ...config, registers: [this.registry] });
  }

  gauge<L extends string>(config: Config<L> & Pick<GaugeConfiguration<L>, 'collect'>): Gauge<L> {
    return this.existing<Gauge<L>>(config.name) ?? new Gauge<L>({ ...config, registers: [this.registry] });
  }

  histogram<L extends string>(config: Config<L> & Pick<HistogramConfiguration<L>, 'buckets'>): Histogram<L> {
    return this.existing<Histogram<L>>(config.name) ?? new Histogram<L>({ ...config, registers: [this.registry] });
  }

  /** The Prometheus text exposition of every metric. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private existing<M>(name: string): M | undefined {
    return this.registry.getSingleMetric(name) as M | undefined;
  }
}

export function createMetrics(service: string, options: { enabled?: boolean } = {}): Metrics {
  return new Metrics(service, options);
}

/**
 * Keeps a label's values bounded: the first `limit` distinct values pass, later new ones become `other`.
 * For values clients choose (operation names) or code derives (routes), so no caller can grow the series.
 */
export function boundedLabel(limit: number, overflow = OVERFLOW_LABEL): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= limit) return overflow;
    seen.add(value);
    return value;
  };
}

/**
 * The route template that answered an Express request (`/files/:id`), never the raw URL. A request answered
 * by middleware mounted on a path (Apollo on `/graphql`) is labelled with that path; one nothing answered
 * with `unmatched`.
 */
export function routeTemplate(req: Pick<Request, 'baseUrl'> & { route?: unknown }): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof path === 'string') return `${req.baseUrl}${path}`;
  if (req.route) return OVERFLOW_LABEL; // a RegExp or array route: no readable template
  return req.baseUrl || UNMATCHED_ROUTE;
}

export const methodLabel = (method: string | undefined): string =>
  method && KNOWN_METHODS.has(method) ? method : 'OTHER';

/** `vidmp3_http_request_duration_seconds{method,route,status}`. */
export function httpDuration(metrics: Metrics): Histogram<'method' | 'route' | 'status'> {
  return metrics.histogram({
    name: 'vidmp3_http_request_duration_seconds',
    help: 'HTTP requests by method, route template and status, in seconds (status 499: the client went away)',
    labelNames: ['method', 'route', 'status'],
    buckets: HTTP_BUCKETS,
  });
}

/**
 * Times a response and records it when it ends: `status` is the code sent, or 499 (nginx's "client closed
 * request") when the client went away first.
 */
export function timeResponse(
  histogram: Histogram<'method' | 'route' | 'status'>,
  method: string | undefined,
  res: ServerResponse,
  route: () => string,
): void {
  const end = histogram.startTimer();
  res.once('close', () => {
    end({ method: methodLabel(method), route: route(), status: res.writableFinished ? res.statusCode : 499 });
  });
}

/** Express middleware recording every request but scrapes in the HTTP histogram, by route template. */
export function httpMetrics(metrics: Metrics) {
  const histogram = httpDuration(metrics);
  const bound = boundedLabel(MAX_ROUTES);
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.path !== '/metrics') timeResponse(histogram, req.method, res, () => bound(routeTemplate(req)));
    next();
  };
}

/** Answers a scrape (any framework: plain Node request and response). */
export function metricsHandler(metrics: Metrics) {
  return async (_req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      const { contentType, body } = await metrics.render();
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('metrics unavailable\n');
    }
  };
}

/** `GET /metrics`, unless metrics are disabled. No auth: keep the port off the public ingress (see docs). */
export function metricsRoute(app: Express, metrics: Metrics): void {
  if (!metrics.enabled) return;
  app.get('/metrics', metricsHandler(metrics));
}

/**
 * A listener of its own serving only `GET /metrics`: for a public service (the gateway), so that the port
 * Prometheus scrapes is not the one the ingress exposes.
 */
export async function startMetricsServer(
  metrics: Metrics,
  host: string,
  port: number,
): Promise<{ url: string; close(): Promise<void> }> {
  const handler = metricsHandler(metrics);
  const server = createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      void handler(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
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

export interface Sample<L extends string> {
  labels: Partial<Record<L, string>>;
  value: number;
}

/**
 * A gauge read from its source when Prometheus scrapes: at most once per `cacheMs` (several scrapers, one
 * query), given up after `timeoutMs`. When the read fails the gauge has no samples (NaN without labels) rather
 * than stale ones.
 */
export function scrapedGauge<L extends string>(
  metrics: Metrics,
  config: Config<L> & {
    read: () => Promise<Sample<L>[]>;
    cacheMs?: number;
    timeoutMs?: number;
    onError?: (err: unknown) => void;
  },
): Gauge<L> {
  const cacheMs = config.cacheMs ?? 5_000;
  const timeoutMs = config.timeoutMs ?? 2_000;
  let cached: { at: number; samples: Promise<Sample<L>[]> } | undefined;
  const read = () => {
    const now = Date.now();
    if (!cached || now - cached.at >= cacheMs) {
      const samples = withTimeout(config.read(), timeoutMs);
      cached = { at: now, samples };
      // A failure is not cached: the next scrape tries again.
      samples.catch(() => {
        if (cached?.samples === samples) cached = undefined;
      });
    }
    return cached.samples;
  };
  return metrics.gauge<L>({
    name: config.name,
    help: config.help,
    ...(config.labelNames ? { labelNames: config.labelNames } : {}),
    async collect() {
      let samples: Sample<L>[];
      try {
        samples = await read();
      } catch (err) {
        this.reset();
        // A gauge without labels always has a value: NaN says "unknown", where 0 would say "none".
        if (!config.labelNames?.length) this.set(Number.NaN);
        config.onError?.(err);
        return;
      }
      this.reset();
      for (const sample of samples) this.set(sample.labels, sample.value);
    },
  });
}

type OperationType = 'query' | 'mutation' | 'subscription' | 'subscription_event' | 'unknown';

/**
 * GraphQL operations, durations and errors, by operation type and root field:
 * `vidmp3_graphql_operations_total`, `vidmp3_graphql_operation_duration_seconds`, `vidmp3_graphql_errors_total`.
 */
export class GraphQLMetrics {
  private readonly operations: Counter<'type' | 'field'>;
  private readonly duration: Histogram<'type' | 'field'>;
  private readonly errors: Counter<'type' | 'field' | 'code'>;
  private readonly boundField = boundedLabel(MAX_ROOT_FIELDS);
  private readonly boundCode = boundedLabel(MAX_ERROR_CODES);

  constructor(metrics: Metrics) {
    this.operations = metrics.counter({
      name: 'vidmp3_graphql_operations_total',
      help: 'GraphQL operations by type and root field (not valid: unknown)',
      labelNames: ['type', 'field'],
    });
    this.duration = metrics.histogram({
      name: 'vidmp3_graphql_operation_duration_seconds',
      help: 'GraphQL operation duration by type and root field, in seconds (subscriptions: per event)',
      labelNames: ['type', 'field'],
      buckets: HTTP_BUCKETS,
    });
    this.errors = metrics.counter({
      name: 'vidmp3_graphql_errors_total',
      help: 'GraphQL errors by operation type, root field and extensions.code',
      labelNames: ['type', 'field', 'code'],
    });
  }

  /**
   * The label of a valid operation: its first root field, with `+` when it selects more. Root fields come from
   * the schema, so clients cannot mint new series the way free-form operation names would let them.
   */
  fieldLabel(operation: OperationDefinitionNode | null | undefined): string {
    if (!operation) return 'unknown';
    const fields = operation.selectionSet.selections.filter((s): s is FieldNode => s.kind === Kind.FIELD);
    const first = fields[0]?.name.value;
    if (!first || !GRAPHQL_NAME.test(first)) return OVERFLOW_LABEL;
    return this.boundField(fields.length > 1 ? `${first}+` : first);
  }

  record(type: OperationType, field: string, errorCodes: readonly unknown[], seconds?: number): void {
    this.operations.inc({ type, field });
    if (seconds !== undefined) this.duration.observe({ type, field }, seconds);
    for (const code of errorCodes) {
      this.errors.inc({ type, field, code: typeof code === 'string' && code ? this.boundCode(code) : 'INTERNAL' });
    }
  }

  /**
   * The Apollo Server plugin. Operations run without an HTTP request are the gateway's per-event queries of
   * its subscriptions (`executeOperation`): counted as `subscription_event`, not as client queries.
   */
  plugin<Ctx extends BaseContext>(): ApolloServerPlugin<Ctx> {
    return {
      requestDidStart: async ({ request }) => {
        const started = process.hrtime.bigint();
        const viaHttp = request.http !== undefined;
        const codes: unknown[] = [];
        return {
          didEncounterErrors: async ({ errors }) => {
            for (const error of errors) codes.push(error.extensions?.code);
          },
          willSendResponse: async ({ operation }) => {
            const type: OperationType = !operation ? 'unknown' : viaHttp ? operation.operation : 'subscription_event';
            const seconds = Number(process.hrtime.bigint() - started) / 1e9;
            this.record(type, this.fieldLabel(operation), codes, seconds);
          },
        };
      },
    };
  }
}
