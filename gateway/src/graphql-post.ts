// POST /graphql with a small JSON body — nearly every API call — served straight off node:http. Express and
// body-parser cost more CPU than a small query itself (a dozen middleware layers, path matching, ETags), so
// this lane does what they did for such a request, in one pass, and hands it to Apollo Server as its Express
// integration does. Every other request (uploads, GET, preflights, gzip or chunked bodies, other paths) goes
// to the Express app unchanged. Operations that no subgraph answers (`{ __typename }`) are answered from a
// cache once Apollo has answered them: a map lookup and a write.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeaderMap, type ApolloServer, type GraphQLRequestListener, type HTTPGraphQLRequest } from '@apollo/server';
import { Kind, OperationTypeNode, type DocumentNode, type OperationDefinitionNode } from 'graphql';
import {
  ErrorCode,
  bodyVerdict,
  httpDuration,
  requestIdFrom,
  timeResponse,
  REQUEST_ID_HEADER,
  type GraphQLMetrics,
  type HttpTimeouts,
  type Logger,
  type Metrics,
  type TokenVerifier,
  type Viewer,
} from '@vidmp3/shared';
import type { GatewayContext } from './context.js';
import { applyCors } from './cors.js';

/** The JSON body limit of /graphql (Express's `express.json({ limit: '1mb' })` on the other path). */
export const MAX_JSON_BODY_BYTES = 1024 * 1024;
/** Answers kept for operations no subgraph answers; only short queries qualify, so this bounds their memory. */
const MAX_STATIC_ANSWERS = 256;
const MAX_STATIC_QUERY_LENGTH = 1024;
const ROUTE = '/graphql';

export interface GraphQLPostOptions {
  apollo: ApolloServer<GatewayContext>;
  verifier: TokenVerifier;
  logger: Logger;
  metrics: Metrics;
  graphqlMetrics: GraphQLMetrics;
  allowedOrigins: readonly string[];
  timeouts: HttpTimeouts;
  /** The client's address as Express's `req.ip` computes it (trusted proxies only). */
  clientAddress: (req: IncomingMessage) => string;
}

/** Takes the request if it is one of this lane's (then true); false leaves it to the Express app. */
export type GraphQLPostLane = (req: IncomingMessage, res: ServerResponse) => boolean;

interface StaticAnswer {
  headers: [string, string][];
  /** Encoded once, when kept. */
  body: Buffer;
  /** The operation's metrics label (`__typename`). */
  field: string;
}

/**
 * Builds the lane. Call before `apollo.start()`: it adds the plugin that recognises answers worth keeping.
 * `forget()` drops the kept answers (when the schema changes).
 */
export function graphqlPostLane(options: GraphQLPostOptions): { lane: GraphQLPostLane; forget(): void } {
  const { apollo, verifier, logger, graphqlMetrics, timeouts } = options;
  const histogram = httpDuration(options.metrics);
  const cors = applyCors(options.allowedOrigins);
  const answers = new Map<string, StaticAnswer>();
  /** Requests (Apollo's view of them) whose answer depends on nothing but the query: the plugin marks them. */
  const cacheable = new WeakMap<HTTPGraphQLRequest, string>();

  const listener: GraphQLRequestListener<GatewayContext> = {
    willSendResponse: ({ request, document, operation, response, errors }) => {
      const ok = !errors?.length && response.body.kind === 'single' && !response.body.singleResult.errors?.length;
      if (request.http && ok && (response.http.status ?? 200) === 200 && document && operation) {
        if (answeredByNoSubgraph(document, operation)) {
          cacheable.set(request.http, graphqlMetrics.fieldLabel(operation));
        }
      }
      return Promise.resolve();
    },
  };
  apollo.addPlugin({ requestDidStart: () => Promise.resolve(listener) });

  const lane: GraphQLPostLane = (req, res) => {
    if (!isLaneRequest(req)) return false;
    const started = process.hrtime.bigint();
    const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    res.setHeader(REQUEST_ID_HEADER, requestId);
    // What the Express path's middleware does for every request: an access log line and the HTTP histogram.
    res.once('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger.info(
        { requestId, method: 'POST', path: ROUTE, status: res.statusCode, ms: Math.round(ms * 10) / 10 },
        'request',
      );
    });
    timeResponse(histogram, 'POST', res, () => ROUTE);
    cors(req, res);
    readBody(req, timeouts, logger, requestId, (text) => {
      void respond(req, res, text, requestId, started).catch((err: unknown) => {
        logger.error({ err, requestId }, 'GraphQL request failed');
        if (!res.headersSent) sendError(res, 500, ErrorCode.INTERNAL, 'Internal server error');
        else res.destroy();
      });
    });
    return true;
  };

  async function respond(
    req: IncomingMessage,
    res: ServerResponse,
    text: string,
    requestId: string,
    started: bigint,
  ): Promise<void> {
    let body: unknown;
    try {
      // No body at all is an empty object to Apollo (as body-parser made it), which says what is missing.
      body = text === '' ? {} : JSON.parse(text);
    } catch {
      sendError(res, 400, 'BAD_REQUEST', 'The request body is not valid JSON');
      return;
    }
    const key = staticKey(body, req.headers.accept);
    const answer = key === undefined ? undefined : answers.get(key);
    // A kept answer still needs a caller the gateway accepts: a refused token goes the whole way, which says why.
    if (answer && (await acceptsToken(verifier, req.headers.authorization, options.clientAddress(req)))) {
      graphqlMetrics.record('query', answer.field, [], Number(process.hrtime.bigint() - started) / 1e9);
      for (const [name, value] of answer.headers) res.setHeader(name, value);
      res.setHeader('content-length', answer.body.length);
      res.end(answer.body);
      return;
    }

    const headers = new HeaderMap();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const url = req.url ?? ROUTE;
    const query = url.indexOf('?');
    const httpGraphQLRequest: HTTPGraphQLRequest = {
      method: 'POST',
      headers,
      search: query === -1 ? '' : url.slice(query),
      body,
    };
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest,
      context: async () => {
        const viewer = await verifier.authenticate(req.headers.authorization, options.clientAddress(req));
        return new HttpContext(viewer, requestId, options.clientAddress(req), logger, res);
      },
    });
    res.statusCode = response.status ?? 200;
    for (const [name, value] of response.headers) res.setHeader(name, value);
    if (response.body.kind === 'complete') {
      const field = cacheable.get(httpGraphQLRequest);
      if (field !== undefined && key !== undefined && res.statusCode === 200 && answers.size < MAX_STATIC_ANSWERS) {
        answers.set(key, { headers: [...response.headers], body: Buffer.from(response.body.string), field });
      }
      res.setHeader('content-length', Buffer.byteLength(response.body.string));
      res.end(response.body.string);
      return;
    }
    for await (const chunk of response.body.asyncIterator) {
      if (res.destroyed) return;
      res.write(chunk);
    }
    res.end();
  }

  return { lane, forget: () => answers.clear() };
}

/**
 * Whether the request is this lane's: `POST /graphql` with a JSON body of a known length within the limit,
 * not compressed. JSON is never a "simple" content type, so Apollo's CSRF prevention lets all of these through.
 */
function isLaneRequest(req: IncomingMessage): boolean {
  if (req.method !== 'POST') return false;
  const url = req.url;
  if (url !== ROUTE && !url?.startsWith(`${ROUTE}?`)) return false;
  const { headers } = req;
  if (headers['transfer-encoding'] !== undefined) return false;
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return false;
  const length = headers['content-length'];
  if (length === undefined || !/^\d{1,7}$/.test(length) || Number(length) > MAX_JSON_BODY_BYTES) return false;
  return isJson(headers['content-type']);
}

/** `application/json`, with no charset or UTF-8 (body-parser reads other UTF encodings; those go to Express). */
function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const [essence = '', ...params] = contentType.split(';');
  if (essence.trim().toLowerCase() !== 'application/json') return false;
  return params.every((param) => {
    const [name = '', value = ''] = param.split('=');
    if (name.trim().toLowerCase() !== 'charset') return true;
    return /^"?utf-8"?$/i.test(value.trim());
  });
}

/**
 * Reads the body (its length is known and within the limit), with the same deadline as every other request
 * body (shared `requestBodyDeadline`): a body that stalls or trickles has its connection cut.
 */
function readBody(
  req: IncomingMessage,
  timeouts: HttpTimeouts,
  logger: Logger,
  requestId: string,
  done: (text: string) => void,
): void {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const started = Date.now();
  let last = started;
  const tickMs = Math.min(1_000, timeouts.idleMs, timeouts.bodyBaseMs);
  const timer = setInterval(() => {
    const now = Date.now();
    const verdict = bodyVerdict(
      { elapsedMs: now - started, sinceProgressMs: now - last, excusedMs: 0, bytes },
      timeouts,
    );
    if (verdict === 'ok') return;
    clearInterval(timer);
    logger.warn(
      { requestId, reason: verdict, receivedBytes: bytes, ms: now - started },
      verdict === 'idle' ? 'request body stalled; connection cut' : 'request body too slow; connection cut',
    );
    req.socket.destroy();
  }, tickMs);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    bytes += chunk.length;
    last = Date.now();
  });
  req.once('end', () => {
    clearInterval(timer);
    done(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'));
  });
  req.once('close', () => clearInterval(timer));
}

/**
 * The cache key of a request whose answer may be a kept one: the query, the operation name and the `accept`
 * header (it picks the content type), for a body with nothing else that could change the answer.
 */
function staticKey(body: unknown, accept: string | undefined): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const { query, operationName, variables, extensions, ...rest } = body as Record<string, unknown>;
  if (typeof query !== 'string' || query.length > MAX_STATIC_QUERY_LENGTH || Object.keys(rest).length > 0) {
    return undefined;
  }
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') return undefined;
  if (!isEmpty(variables) || !isEmpty(extensions)) return undefined;
  return `${accept ?? ''}\n${operationName ?? ''}\n${query}`;
}

const isEmpty = (value: unknown) =>
  value === undefined ||
  value === null ||
  (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0);

/**
 * True for a query that selects only `__typename` on the root, without directives, in a document of that one
 * operation: its answer is the root type's name, the same for everyone until the schema changes.
 */
function answeredByNoSubgraph(document: DocumentNode, operation: OperationDefinitionNode): boolean {
  if (operation.operation !== OperationTypeNode.QUERY || document.definitions.length !== 1) return false;
  if (operation.directives?.length || operation.variableDefinitions?.length) return false;
  return operation.selectionSet.selections.every(
    (s) => s.kind === Kind.FIELD && s.name.value === '__typename' && !s.directives?.length,
  );
}

/** Whether the `Authorization` header is acceptable (none, or a valid token); false sends the request on. */
async function acceptsToken(
  verifier: TokenVerifier,
  authorization: string | undefined,
  clientAddress: string,
): Promise<boolean> {
  try {
    await verifier.authenticate(authorization, clientAddress);
    return true;
  } catch {
    return false;
  }
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ errors: [{ message, extensions: { code } }] });
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}

/**
 * A request's context. Its logger (a pino child) and abort signal are made on first use: most requests never
 * log and only uploads (which take the Express path) watch the signal. Apollo copies a context's own fields
 * into a clone, so the lazily made parts live in an object the copies share.
 */
class HttpContext implements GatewayContext {
  private readonly lazy: { log?: Logger; gone?: AbortController } = {};

  constructor(
    readonly viewer: Viewer | null,
    readonly requestId: string,
    readonly ip: string,
    private readonly logger: Logger,
    private readonly res: ServerResponse,
  ) {}

  get log(): Logger {
    return (this.lazy.log ??= this.logger.child({ requestId: this.requestId }));
  }

  get signal(): AbortSignal {
    if (!this.lazy.gone) {
      const gone = new AbortController();
      this.lazy.gone = gone;
      const { res } = this;
      if (res.destroyed && !res.writableFinished) gone.abort();
      else
        res.on('close', () => {
          if (!res.writableFinished) gone.abort();
        });
    }
    return this.lazy.gone.signal;
  }
}
