import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { ApolloServer } from '@apollo/server';
import {
  GraphQLError,
  Kind,
  OperationTypeNode,
  getArgumentValues,
  getOperationAST,
  getVariableValues,
  parse,
  print,
  specifiedRules,
  validate,
  visit,
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type FormattedExecutionResult,
  type FragmentDefinitionNode,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type SelectionNode,
  type ValidationRule,
} from 'graphql';
import { CloseCode, createClient, type Client, type SubscribePayload } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import WebSocket, { WebSocketServer } from 'ws';
import {
  ErrorCode,
  REQUEST_ID_HEADER,
  createFormatError,
  userError,
  type Logger,
  type TokenVerifier,
  type Viewer,
} from '@vidmp3/shared';
import type { GatewayContext } from './context.js';

/**
 * Runs the client's selection on one job as a query, through the same executor that serves HTTP (in
 * production `apolloExecutor`: the query plan fetches fields of every subgraph, limits and masking apply).
 */
export type JobQueryExecutor = (
  query: string,
  variables: Record<string, unknown>,
  context: GatewayContext,
) => Promise<FormattedExecutionResult>;

export interface SubscriptionServerOptions {
  /** The gateway's HTTP server: WebSocket upgrades on `path` are taken over, everything else stays HTTP. */
  httpServer: Server;
  /** Default `/graphql`, the same path as HTTP. */
  path?: string;
  /** The API schema operations are validated against; undefined while the gateway has not loaded it. */
  schema: () => GraphQLSchema | undefined;
  /** The HTTP path's operation limits (`operationLimits(config).validationRules`), run after graphql's rules. */
  validationRules: readonly ValidationRule[];
  /** Stops the parser early on huge documents, like MAX_TOKENS on HTTP. */
  maxTokens: number;
  /** The verifier the HTTP path uses. */
  verifier: TokenVerifier;
  /** Browser origins allowed to connect (`*`: any); a request without an Origin header (no browser) is allowed. */
  allowedOrigins: readonly string[];
  /** The jobs subgraph's GraphQL URL (http or https); its WebSocket endpoint is the same URL with ws or wss. */
  jobsUrl: string;
  execute: JobQueryExecutor;
  logger: Logger;
  /** Development keeps the message of unexpected errors (never the stack), as on HTTP. */
  exposeInternals: boolean;
  /** Drops "Did you mean …?" from validation errors, as Apollo's hideSchemaDetailsFromClientErrors does. */
  hideSchemaDetails: boolean;
  /** Express's compiled `trust proxy fn`: whose X-Forwarded-For to believe for the client's address. */
  trustProxy?: (address: string, hop: number) => boolean;
  /** Default 50. */
  maxSubscriptionsPerConnection?: number;
  /** Reconnection to jobs after it went away (a replica restarting); then the subscription fails. */
  reconnect?: { attempts?: number; maxDelayMs?: number };
}

export interface SubscriptionServer {
  /** Says "going away" (1001) to every client, ends their upstream subscriptions and stops taking upgrades. */
  close(): Promise<void>;
}

/** Answers subscription operations with graphql-ws on the gateway's HTTP server (DESIGN.md, design B). */
export function startSubscriptionServer(options: SubscriptionServerOptions): SubscriptionServer {
  const log = options.logger.child({ component: 'subscriptions' });
  const format = createFormatError({ exposeInternals: options.exposeInternals });
  const originAllowed = originMatcher(options.allowedOrigins);
  const maxSubscriptions = options.maxSubscriptionsPerConnection ?? 50;
  const upstream: UpstreamOptions = {
    url: webSocketUrl(options.jobsUrl),
    attempts: options.reconnect?.attempts ?? 30,
    maxDelayMs: options.reconnect?.maxDelayMs ?? 5_000,
  };

  // Operations are small; without a cap, ws would buffer messages of up to 100 MiB.
  const wss = new WebSocketServer({
    server: options.httpServer,
    path: options.path ?? '/graphql',
    maxPayload: 1 << 20,
  });
  const server = useServer<Record<string, unknown>, { connection: Connection }>(
    {
      isProd: !options.exposeInternals,
      async onConnect(ctx) {
        const { request, socket } = ctx.extra;
        const requestId = incomingRequestId(request);
        const connectionLog = log.child({ requestId });
        if (!originAllowed(request.headers.origin)) {
          connectionLog.info({ origin: request.headers.origin }, 'WebSocket refused: origin not allowed');
          return false; // graphql-ws closes with 4403 Forbidden
        }
        let viewer: Viewer | null;
        try {
          viewer = await authenticate(options.verifier, ctx.connectionParams);
        } catch (err) {
          if (err instanceof GraphQLError && err.extensions.code === ErrorCode.UNAUTHENTICATED) {
            socket.close(CloseCode.Unauthorized, closeReason(err.message));
          } else {
            // The users service's keys could not be fetched: our failure, worth a retry by the client.
            connectionLog.error({ err }, 'could not verify an access token');
            socket.close(1013, 'Try again later');
          }
          return false; // the socket is already closing: graphql-ws's own close is then a no-op
        }
        ctx.extra.connection = new Connection(
          { viewer, requestId, log: connectionLog, ip: clientAddress(request, options.trustProxy) },
          socket,
          upstream,
        );
        return true;
      },

      onSubscribe(ctx, _id, payload) {
        const connection = ctx.extra.connection;
        if (!connection) return [userError(ErrorCode.INTERNAL, 'The connection is not initialised')];
        // The subscription being set up is counted already.
        if (Object.keys(ctx.subscriptions).length > maxSubscriptions) {
          return [userError(ErrorCode.RATE_LIMITED, `At most ${maxSubscriptions} subscriptions per connection`)];
        }
        const schema = options.schema();
        if (!schema) return [userError(ErrorCode.INTERNAL, 'The schema is not loaded yet')];
        const planned = planSubscription(schema, payload, {
          rules: [...specifiedRules, ...options.validationRules],
          maxTokens: options.maxTokens,
          hideSchemaDetails: options.hideSchemaDetails,
        });
        if (Array.isArray(planned)) return planned;
        return {
          schema,
          document: planned.document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue: new RelayTarget(planned, connection, options.execute),
        };
      },

      // Only ever reached for subscription operations: onSubscribe refuses the others.
      subscribe: (args) =>
        args.contextValue instanceof RelayTarget
          ? new JobRelay(args.contextValue)
          : { errors: [userError(ErrorCode.INTERNAL, 'Unplanned subscription')] },

      // Every error leaves through one of these two: masked like HTTP errors (no stacks, no internal URLs).
      onNext: (_ctx, _id, _payload, _args, { errors, ...result }) =>
        errors ? { ...result, errors: errors.map((e) => format(e.toJSON())) } : result,
      onError: (_ctx, _id, _payload, errors) => errors.map((e) => format(e.toJSON())),

      onClose(ctx) {
        // Runs after graphql-ws has ended the connection's subscriptions (each disposes its upstream one).
        ctx.extra.connection?.close();
      },
    },
    wss,
  );

  return {
    async close() {
      // A client that never answers the close handshake must not hold the shutdown for ws's 30 s.
      const force = setTimeout(() => {
        for (const socket of wss.clients) socket.terminate();
      }, 2_000);
      try {
        await server.dispose();
      } finally {
        clearTimeout(force);
      }
    },
  };
}

/** The production executor: the same Apollo Server that serves HTTP runs the per-event query. */
export function apolloExecutor(apollo: ApolloServer<GatewayContext>): JobQueryExecutor {
  return async (query, variables, contextValue) => {
    const response = await apollo.executeOperation({ query, variables }, { contextValue });
    if (response.body.kind !== 'single') throw new Error('unexpected incremental response to a job query');
    return response.body.singleResult;
  };
}

/** The jobs subgraph's WebSocket endpoint: its GraphQL URL with http(s) turned into ws(s). */
export function webSocketUrl(httpUrl: string): string {
  const url = new URL(httpUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

// ---------------------------------------------------------------------------------------------------------------
// Connection: who is calling, and its one upstream client to jobs

interface UpstreamOptions {
  url: string;
  attempts: number;
  maxDelayMs: number;
}

type ConnectionIdentity = Omit<GatewayContext, 'signal'>;

class Connection {
  private upstreamClient: UpstreamClient | undefined;
  private readonly expiry: NodeJS.Timeout | undefined;

  constructor(
    readonly identity: ConnectionIdentity,
    socket: WebSocket,
    private readonly upstreamOptions: UpstreamOptions,
  ) {
    const viewer = identity.viewer;
    if (viewer) {
      // A socket outlives its token: when the token expires the client must come back with a fresh one.
      const delay = Math.min(Math.max(viewer.expiresAt.getTime() - Date.now(), 0), 2 ** 31 - 1);
      this.expiry = setTimeout(() => socket.close(CloseCode.Unauthorized, 'Access token expired'), delay);
      this.expiry.unref();
    }
  }

  /** Created on the first subscription; lazy, so its socket closes when the connection has none left. */
  upstream(): Client {
    this.upstreamClient ??= createUpstreamClient(this.identity, this.upstreamOptions);
    return this.upstreamClient.client;
  }

  close(): void {
    clearTimeout(this.expiry);
    const upstream = this.upstreamClient;
    this.upstreamClient = undefined;
    if (!upstream) return;
    // dispose() waits for a connection attempt in progress, and rejects when it fails: nothing is left then.
    void Promise.resolve(upstream.client.dispose()).catch(() => undefined);
    // An attempt still in its handshake would otherwise stay open until jobs answers, if it ever does.
    for (const socket of upstream.sockets) if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
  }
}

interface UpstreamClient {
  client: Client;
  /** The client's sockets not closed yet (at most one, but a closing one may linger while the next opens). */
  sockets: ReadonlySet<WebSocket>;
}

function createUpstreamClient(identity: ConnectionIdentity, options: UpstreamOptions): UpstreamClient {
  const { viewer, requestId, ip, log } = identity;
  // The upgrade request carries the same headers a subgraph sees on HTTP (datasource.ts forwardedHeaders).
  const headers = {
    ...(viewer ? { authorization: `Bearer ${viewer.token}` } : {}),
    [REQUEST_ID_HEADER]: requestId,
    'x-forwarded-for': ip,
  };
  const sockets = new Set<WebSocket>();
  class UpstreamWebSocket extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[]) {
      // Without a handshake timeout, a replica that accepts the TCP connection and never answers stalls us.
      super(address, protocols, { headers, maxPayload: 1 << 20, handshakeTimeout: 10_000 });
      sockets.add(this);
      this.once('close', () => sockets.delete(this));
    }
  }
  let pongWait: NodeJS.Timeout | undefined;
  const client: Client = createClient({
    url: options.url,
    webSocketImpl: UpstreamWebSocket,
    // Browsers cannot set headers on a WebSocket, so graphql-ws servers read credentials from here.
    connectionParams: { ...(viewer ? { authorization: `Bearer ${viewer.token}` } : {}), requestId },
    lazy: true,
    connectionAckWaitTimeout: 10_000,
    // A jobs replica that restarts or is replaced must not end the client's subscription: reconnect (the
    // client resubscribes every active subscription), with a bounded backoff.
    retryAttempts: options.attempts,
    retryWait: (retries) => sleep(Math.min(100 * 2 ** retries, options.maxDelayMs) + Math.random() * 100),
    // Connection refused (the replica is down) is an error event, not a close event: retry those too. A 4403
    // is a refusal that a retry will not change; graphql-ws itself never retries 4401 and protocol errors.
    shouldRetry: (errOrClose) => !(isCloseEvent(errOrClose) && refusals.has(errOrClose.code)),
    // A replica that vanished without closing the TCP connection is noticed by a missing pong.
    keepAlive: 10_000,
    on: {
      ping: (received) => {
        if (received) return;
        pongWait = setTimeout(() => client.terminate(), 5_000);
        pongWait.unref();
      },
      pong: (received) => {
        if (received) clearTimeout(pongWait);
      },
      closed: (event) => {
        clearTimeout(pongWait);
        if (isCloseEvent(event) && event.code !== 1000) {
          log.warn({ code: event.code, reason: event.reason }, 'jobs subscription socket closed');
        }
      },
      connected: (_socket, _payload, wasRetry) => {
        if (wasRetry) log.info('jobs subscription socket reconnected');
      },
    },
  });
  return { client, sockets };
}

// ---------------------------------------------------------------------------------------------------------------
// Planning: from the client's subscription to an upstream subscription (ids only) and a per-event query

/** Root subscription fields this gateway knows how to relay, with what to subscribe to upstream. */
const upstreamSubscriptions = {
  jobUpdated: (args: Record<string, unknown>): SubscribePayload => ({
    query: 'subscription JobUpdated($id: ID!) { jobUpdated(id: $id) { id } }',
    variables: { id: args.id },
  }),
  myJobUpdates: (): SubscribePayload => ({ query: 'subscription MyJobUpdates { myJobUpdates { id } }' }),
} as const;
type RelayedField = keyof typeof upstreamSubscriptions;

interface SubscriptionPlan {
  document: DocumentNode;
  /** The root field as upstream names it, and the key the client expects (its alias, if any). */
  field: RelayedField;
  responseKey: string;
  upstream: SubscribePayload;
  /** `query ($<idVariable>: ID!, <client variables it uses>) { job(id: $<idVariable>) { <selection> } } …` */
  query: string;
  idVariable: string;
  /** The client's values of the variables the query uses. */
  variables: Record<string, unknown>;
}

interface PlanOptions {
  rules: readonly ValidationRule[];
  maxTokens: number;
  hideSchemaDetails: boolean;
}

function planSubscription(
  schema: GraphQLSchema,
  payload: SubscribePayload,
  options: PlanOptions,
): SubscriptionPlan | GraphQLError[] {
  let document: DocumentNode;
  try {
    document = parse(payload.query, { maxTokens: options.maxTokens });
  } catch (err) {
    return [withCode(err, 'GRAPHQL_PARSE_FAILED')];
  }
  const operation = getOperationAST(document, payload.operationName);
  if (!operation) {
    return [
      badRequest(
        payload.operationName
          ? `Unknown operation named "${payload.operationName}"`
          : 'Must provide operationName if the document contains several operations',
      ),
    ];
  }
  if (operation.operation !== OperationTypeNode.SUBSCRIPTION) {
    return [
      badRequest(
        `Only subscriptions are served over WebSocket: send ${operation.operation === OperationTypeNode.QUERY ? 'queries' : 'mutations'} over HTTP (POST /graphql)`,
      ),
    ];
  }
  const invalid = validate(schema, document, options.rules);
  if (invalid.length > 0) {
    return invalid.map((error) => {
      const located = withCode(error, 'GRAPHQL_VALIDATION_FAILED');
      if (options.hideSchemaDetails) located.message = located.message.replace(/ ?Did you mean(.+?)\?$/, '');
      return located;
    });
  }

  const fragments = new Map(
    document.definitions
      .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((d) => [d.name.value, d]),
  );
  // Validation guarantees one response key at the root; the same field may still be written several times.
  const fields = rootFields(operation.selectionSet.selections, fragments);
  if (!Array.isArray(fields)) return [fields];
  const [first] = fields;
  if (!first) return [badRequest('A subscription selects one field')];
  const field = first.name.value;
  if (!isRelayedField(field)) return [badRequest(`The gateway cannot serve the subscription field "${field}"`)];

  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], payload.variables ?? {});
  if (coerced.errors) return coerced.errors.map((error) => withCode(error, ErrorCode.BAD_USER_INPUT));
  const fieldDef = schema.getSubscriptionType()?.getFields()[field];
  if (!fieldDef) return [badRequest(`The schema has no subscription field "${field}"`)];
  let args: Record<string, unknown>;
  try {
    args = getArgumentValues(fieldDef, first, coerced.coerced);
  } catch (err) {
    return [withCode(err, ErrorCode.BAD_USER_INPUT)];
  }

  const selections = fields.flatMap((f) => f.selectionSet?.selections ?? []);
  const usedFragments = reachableFragments(selections, fragments);
  const usedVariables = variablesIn([...selections, ...usedFragments]);
  const definitions = (operation.variableDefinitions ?? []).filter((d) => usedVariables.has(d.variable.name.value));
  let idVariable = '__id';
  while (definitions.some((d) => d.variable.name.value === idVariable)) idVariable += '_';
  const query = [
    `query (${[`$${idVariable}: ID!`, ...definitions.map((d) => print(d))].join(', ')})`,
    `{ job(id: $${idVariable}) { ${selections.map((s) => print(s)).join(' ')} } }`,
    ...usedFragments.map((f) => print(f)),
  ].join(' ');
  const variables = Object.fromEntries(
    definitions
      .map((d) => d.variable.name.value)
      .filter((name) => payload.variables && name in payload.variables)
      .map((name) => [name, payload.variables?.[name]]),
  );

  return {
    document,
    field,
    responseKey: first.alias?.value ?? field,
    upstream: upstreamSubscriptions[field](args),
    query,
    idVariable,
    variables,
  };
}

function isRelayedField(name: string): name is RelayedField {
  return Object.hasOwn(upstreamSubscriptions, name);
}

/** The root field nodes, through fragments; a conditional root field is refused (events would have nowhere to go). */
function rootFields(
  selections: readonly SelectionNode[],
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
): FieldNode[] | GraphQLError {
  const fields: FieldNode[] = [];
  for (const selection of selections) {
    if (selection.directives?.some((d) => d.name.value === 'skip' || d.name.value === 'include')) {
      return badRequest('@skip and @include are not allowed on the root field of a subscription');
    }
    let nested: readonly SelectionNode[];
    switch (selection.kind) {
      case Kind.FIELD:
        fields.push(selection);
        continue;
      case Kind.INLINE_FRAGMENT:
        nested = selection.selectionSet.selections;
        break;
      case Kind.FRAGMENT_SPREAD:
        nested = fragments.get(selection.name.value)?.selectionSet.selections ?? [];
        break;
    }
    const inner = rootFields(nested, fragments);
    if (!Array.isArray(inner)) return inner;
    fields.push(...inner);
  }
  return fields;
}

/** The fragment definitions the selections use, directly or through other fragments. */
function reachableFragments(
  selections: readonly SelectionNode[],
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
): FragmentDefinitionNode[] {
  const found = new Map<string, FragmentDefinitionNode>();
  const walk = (nodes: readonly (SelectionNode | FragmentDefinitionNode)[]) => {
    for (const node of nodes) {
      visit(node, {
        FragmentSpread(spread) {
          const name = spread.name.value;
          const fragment = fragments.get(name);
          if (!fragment || found.has(name)) return;
          found.set(name, fragment);
          walk([fragment]);
        },
      });
    }
  };
  walk(selections);
  return [...found.values()];
}

function variablesIn(nodes: readonly (SelectionNode | FragmentDefinitionNode)[]): Set<string> {
  const names = new Set<string>();
  for (const node of nodes) {
    visit(node, {
      Variable(variable) {
        names.add(variable.name.value);
      },
    });
  }
  return names;
}

// ---------------------------------------------------------------------------------------------------------------
// Relaying: upstream events in, the client's selection out

/** What `subscribe` receives as the context value: the plan, for whom, and how to run the per-event query. */
class RelayTarget {
  constructor(
    readonly plan: SubscriptionPlan,
    readonly connection: Connection,
    readonly execute: JobQueryExecutor,
  ) {}
}

type Pending = { kind: 'job'; id: string } | { kind: 'errors'; errors: GraphQLError[] };
const finished: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * One client subscription. Upstream events queue job ids; each `next()` takes one and runs the client's
 * selection on it. An id already waiting in the queue is not queued twice: the query reads the job's
 * current state, so a slow client gets the latest state rather than a backlog. Written as an explicit
 * iterator, not an async generator, so that `return()` (the client unsubscribing or leaving) takes effect at
 * once — a generator's return waits until its pending `await` settles, here possibly the next job event.
 */
class JobRelay implements AsyncIterableIterator<ExecutionResult> {
  private readonly queue: Pending[] = [];
  private upstreamDone = false;
  private closed = false;
  private wake: (() => void) | undefined;
  private readonly aborted = new AbortController();
  private readonly closing: Promise<void>;
  private readonly unsubscribe: () => void;

  constructor(private readonly target: RelayTarget) {
    this.closing = new Promise((resolve) => this.aborted.signal.addEventListener('abort', () => resolve()));
    const { plan, connection } = target;
    this.unsubscribe = connection.upstream().subscribe<Record<string, unknown>, unknown>(plan.upstream, {
      next: (result) => {
        const event = result.data?.[plan.field];
        if (isRecord(event) && typeof event.id === 'string') this.enqueueJob(event.id);
        if (result.errors?.length)
          this.enqueue({ kind: 'errors', errors: result.errors.map((e) => this.upstreamError(e)) });
      },
      error: (err) => {
        this.enqueue({ kind: 'errors', errors: this.upstreamFailure(err) });
        this.upstreamDone = true;
      },
      complete: () => {
        this.upstreamDone = true;
        this.signal();
      },
    });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<ExecutionResult>> {
    for (;;) {
      if (this.closed) return finished;
      const pending = this.queue.shift();
      if (pending?.kind === 'errors') return { done: false, value: { errors: pending.errors } };
      if (pending?.kind === 'job') {
        const result = await Promise.race([this.query(pending.id), this.closing]);
        return result && !this.closed ? { done: false, value: result } : finished;
      }
      if (this.upstreamDone) {
        this.close();
        return finished;
      }
      await Promise.race([new Promise<void>((resolve) => (this.wake = resolve)), this.closing]);
    }
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.close();
    return finished;
  }

  async throw(): Promise<IteratorResult<ExecutionResult>> {
    this.close();
    return finished;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe(); // tells jobs "complete" unless it has finished already
    this.aborted.abort();
  }

  private enqueueJob(id: string): void {
    if (this.queue.some((p) => p.kind === 'job' && p.id === id)) return;
    this.enqueue({ kind: 'job', id });
  }

  private enqueue(pending: Pending): void {
    this.queue.push(pending);
    this.signal();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Never rejects: whatever goes wrong becomes an error in this event's result. */
  private async query(id: string): Promise<ExecutionResult> {
    const { plan, connection, execute } = this.target;
    const context: GatewayContext = { ...connection.identity, signal: this.aborted.signal };
    try {
      const result = await execute(plan.query, { ...plan.variables, [plan.idVariable]: id }, context);
      const errors = (result.errors ?? []).map((e) => this.rebased(e, 'job'));
      const job = result.data?.job;
      if (job === null || job === undefined) {
        return { data: null, errors: errors.length > 0 ? errors : [userError(ErrorCode.NOT_FOUND, 'Job not found')] };
      }
      return { data: { [plan.responseKey]: job }, ...(errors.length > 0 ? { errors } : {}) };
    } catch (err) {
      connection.identity.log.error({ err }, 'a subscription event could not be queried');
      return { data: null, errors: [internalError(err)] };
    }
  }

  /** An error as the client must see it: located under its own response key, with its code. */
  private rebased(error: GraphQLFormattedError, upstreamKey: string): GraphQLError {
    const [head, ...rest] = error.path ?? [];
    return new GraphQLError(error.message, {
      ...(head === upstreamKey ? { path: [this.target.plan.responseKey, ...rest] } : {}),
      extensions: { ...error.extensions },
    });
  }

  private upstreamError(error: GraphQLFormattedError): GraphQLError {
    return this.rebased(error, this.target.plan.field);
  }

  /** graphql-ws reports GraphQL errors as an array, a refused or lost connection as a close event or error. */
  private upstreamFailure(err: unknown): GraphQLError[] {
    if (Array.isArray(err) && err.every(isFormattedError)) return err.map((e) => this.upstreamError(e));
    if (isCloseEvent(err) && refusals.has(err.code)) {
      return [userError(ErrorCode.UNAUTHENTICATED, 'The jobs service refused the credentials')];
    }
    const log = this.target.connection.identity.log;
    log.error(
      isCloseEvent(err) ? { code: err.code, reason: err.reason } : { err },
      'the jobs subscription failed for good',
    );
    return [internalError(err, 'The jobs service is unavailable')];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

async function authenticate(
  verifier: TokenVerifier,
  params: Readonly<Record<string, unknown>> | undefined,
): Promise<Viewer | null> {
  const authorization = params?.authorization ?? params?.Authorization;
  const token = params?.token;
  if (typeof authorization === 'string' && authorization !== '') return verifier.authenticate(authorization);
  if (typeof token === 'string' && token !== '') return verifier.verify(token);
  if (isMissing(authorization) && isMissing(token)) return null;
  throw userError(ErrorCode.UNAUTHENTICATED, 'Invalid access token: expected "authorization: Bearer <token>"');
}

const isMissing = (value: unknown) => value === undefined || value === null || value === '';

function originMatcher(allowed: readonly string[]): (origin: string | undefined) => boolean {
  if (allowed.includes('*')) return () => true;
  const origins = new Set(allowed.map(normalizeOrigin));
  // No Origin header: not a browser, so no page of another site can be speaking through it.
  return (origin) => origin === undefined || origins.has(normalizeOrigin(origin));
}

function normalizeOrigin(origin: string): string {
  return URL.canParse(origin) ? new URL(origin).origin : origin.toLowerCase();
}

/** A well-formed request id from the caller (a proxy in front), else a new one, as on HTTP (shared http.ts). */
function incomingRequestId(request: IncomingMessage): string {
  const incoming = request.headers[REQUEST_ID_HEADER];
  return typeof incoming === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(incoming) ? incoming : randomUUID();
}

/** The client's address the way Express computes `req.ip` (proxy-addr): walk X-Forwarded-For while trusted. */
function clientAddress(request: IncomingMessage, trust: SubscriptionServerOptions['trustProxy']): string {
  const socketAddress = request.socket.remoteAddress ?? 'unknown';
  const forwarded = request.headers['x-forwarded-for'];
  if (!trust || typeof forwarded !== 'string') return socketAddress;
  const hops = [
    socketAddress,
    ...forwarded
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean)
      .reverse(),
  ];
  for (let i = 0; i < hops.length - 1; i++) if (!trust(hops[i]!, i)) return hops[i]!;
  return hops[hops.length - 1]!;
}

function withCode(err: unknown, code: string): GraphQLError {
  if (!(err instanceof GraphQLError)) return internalError(err);
  return new GraphQLError(err.message, {
    nodes: err.nodes,
    source: err.source,
    positions: err.positions,
    originalError: err,
    extensions: { ...err.extensions, code },
  });
}

const badRequest = (message: string) => new GraphQLError(message, { extensions: { code: 'BAD_REQUEST' } });

function internalError(err: unknown, message = err instanceof Error ? err.message : String(err)): GraphQLError {
  return new GraphQLError(message, {
    extensions: { code: ErrorCode.INTERNAL },
    ...(err instanceof Error ? { originalError: err } : {}),
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function isFormattedError(value: unknown): value is GraphQLFormattedError {
  return isRecord(value) && typeof value.message === 'string';
}

/** Close codes of a server refusing the credentials (or the caller): retrying will not change its mind. */
const refusals: ReadonlySet<number> = new Set([CloseCode.Unauthorized, CloseCode.Forbidden]);

function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return isRecord(value) && typeof value.code === 'number' && 'reason' in value;
}

/** A short close reason: the WebSocket protocol allows 123 bytes. */
function closeReason(message: string): string {
  return Buffer.byteLength(message) <= 123 ? message : `${message.slice(0, 100)}…`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
