import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Fetcher, FetcherHeaders, FetcherRequestInit, FetcherResponse } from '@apollo/utils.fetcher';

/*
 * The gateway's client for subgraph requests (Apollo Gateway's `fetcher`).
 *
 * Apollo's default is make-fetch-happen, whose agent stack (minipass-fetch, @npmcli/agent, agent-base, which
 * builds an Error stack trace on every request) was ~21 % of the gateway's CPU under load. This is node:http
 * with one keep-alive Agent per subgraph origin, and nothing else on the request path.
 *
 * node:http rather than undici (measured on this 2-core machine, 32 concurrent POSTs to a local server in the
 * same process, client and server CPU together: make-fetch-happen 514 µs a request, this client 190 µs,
 * undici 7's `request()` on an `Agent` 130 µs). undici is cheaper still, but it does not say whether a request
 * went out on a reused connection, and that is what makes a resend safe to decide: here a query that failed
 * on a pooled socket before any answer byte (the server closed it as we reused it) is sent once more, while
 * one that failed on a fresh connection (the subgraph is failing) is not, and a mutation never is. It would
 * also be a new dependency; the step from make-fetch-happen to this is most of the gain. Revisit if the
 * subgraph client shows up in a profile again.
 */

export interface SubgraphClientOptions {
  /** Sockets per subgraph origin, at most; requests beyond wait for one (Node's Agent queues them). */
  maxSockets: number;
  /**
   * An idle pooled socket is closed after this long. Shorter than every server's keep-alive timeout
   * (SERVER_KEEP_ALIVE_TIMEOUT_MS, 65 s), so that the client, never the server, closes an idle connection.
   */
  idleTimeoutMs: number;
  /** A request is abandoned (its socket destroyed) when its answer has not fully arrived after this long. */
  timeoutMs: number;
  /** An answer larger than this (in UTF-16 code units, about bytes for JSON) is refused. */
  maxResponseBytes: number;
  /** Identical concurrent queries of one viewer share one upstream request (never mutations). */
  dedupe: boolean;
}

export const defaultSubgraphClientOptions: SubgraphClientOptions = {
  maxSockets: 64,
  idleTimeoutMs: 30_000,
  timeoutMs: 30_000,
  maxResponseBytes: 32 * 1024 * 1024,
  dedupe: true,
};

export type SubgraphFetcher = Fetcher & {
  /** Closes every pooled socket (at shutdown). */
  close(): void;
};

/**
 * True when a subgraph request body is a GraphQL query, which may be sent twice (a retry) or shared (dedupe).
 * Apollo Gateway writes `{"query":"…",…}` with the query first and one operation per document, so a look at
 * the first token is enough, without parsing: `query …` or `{ … }`. Anything else — a mutation, a
 * subscription, a leading comment or fragment, another body shape — is treated as unsafe to send again.
 */
export function isQueryBody(body: string | Buffer | undefined): boolean {
  if (typeof body !== 'string') return false;
  return /^\{"query":"(?:\s|\\[nrt])*(?:query(?![_0-9A-Za-z])|\{)/.test(body);
}

/** A subgraph's answer, read whole: what is shared between deduplicated requests. */
interface Answer {
  url: string;
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An error that happened before any byte of the answer, on a socket a previous request had used. */
class StaleSocketError extends Error {
  constructor(readonly original: unknown) {
    super(original instanceof Error ? original.message : String(original));
  }
}

// A server that closed an idle socket as we reused it shows up as one of these before any response byte.
const RETRYABLE_CODES = new Set(['ECONNRESET', 'EPIPE']);

// For the one retry: a new connection, closed after the answer, never one from the pool.
const freshAgents = { http: new HttpAgent({ keepAlive: false }), https: new HttpsAgent({ keepAlive: false }) };

export function createSubgraphFetcher(overrides: Partial<SubgraphClientOptions> = {}): SubgraphFetcher {
  const options = { ...defaultSubgraphClientOptions, ...overrides };
  const agents = new Map<string, HttpAgent>();
  const inFlight = new Map<string, Promise<Answer>>();

  const agentFor = (url: URL): HttpAgent => {
    let agent = agents.get(url.origin);
    if (!agent) {
      const settings = {
        keepAlive: true,
        maxSockets: options.maxSockets,
        maxFreeSockets: options.maxSockets,
        // On a pooled socket Node's Agent applies this as the idle timeout (it destroys a free socket whose
        // timeout fires); a request in progress is bounded by timeoutMs below instead.
        timeout: options.idleTimeoutMs,
        // Most recently used first: under light load a few sockets stay warm and the rest time out.
        scheduling: 'lifo' as const,
      };
      agent = url.protocol === 'https:' ? new HttpsAgent(settings) : new HttpAgent(settings);
      agents.set(url.origin, agent);
    }
    return agent;
  };

  const send = (url: URL, init: FetcherRequestInit, fresh = false): Promise<Answer> =>
    new Promise<Answer>((resolve, reject) => {
      const body = init.body ?? '';
      const https = url.protocol === 'https:';
      const req = (https ? httpsRequest : httpRequest)(url, {
        method: init.method ?? 'GET',
        headers: { ...init.headers, 'content-length': String(Buffer.byteLength(body)) },
        agent: fresh ? (https ? freshAgents.https : freshAgents.http) : agentFor(url),
        ...(init.signal ? { signal: init.signal as AbortSignal } : {}),
      });
      let answered = false;
      // The first outcome wins; the connection is destroyed on any failure (never handed back half-read).
      const fail = (err: Error) => {
        clearTimeout(timer);
        reject(err);
        req.destroy();
      };
      const timer = setTimeout(
        // ETIMEDOUT: the client is told SERVICE_UNAVAILABLE (a dependency is down), not INTERNAL.
        () =>
          fail(
            Object.assign(new Error(`subgraph ${url.origin} did not answer within ${options.timeoutMs} ms`), {
              code: 'ETIMEDOUT',
            }),
          ),
        options.timeoutMs,
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        const stale = !answered && req.reusedSocket && err.code !== undefined && RETRYABLE_CODES.has(err.code);
        fail(stale ? new StaleSocketError(err) : err);
      });
      req.on('response', (res: IncomingMessage) => {
        answered = true;
        // Read whole, as a string: the answer is JSON and small, and a body left unread would keep the
        // socket out of the pool.
        res.setEncoding('utf8');
        let text = '';
        res.on('data', (chunk: string) => {
          text += chunk;
          if (text.length > options.maxResponseBytes) {
            fail(new Error(`subgraph ${url.origin} answered more than ${options.maxResponseBytes} bytes`));
          }
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolve({
            url: url.href,
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            headers: res.headers,
            body: text,
          });
        });
        res.on('error', fail);
        res.on('close', () => {
          if (!res.complete) fail(new Error(`subgraph ${url.origin} closed the connection mid-answer`));
        });
      });
      req.end(body);
    });

  // A query that failed on a reused socket before any byte of the answer is sent once more, on a connection
  // of its own (the pool may hold more sockets the server closed at the same moment): the server closed that
  // idle socket as we reused it, and never saw the query. A mutation is not: we cannot know whether the
  // server acted on it.
  const sendOnce = async (url: URL, init: FetcherRequestInit, retryable: boolean): Promise<Answer> => {
    try {
      return await send(url, init);
    } catch (err) {
      if (!(err instanceof StaleSocketError)) throw err;
      if (!retryable) throw err.original;
      return send(url, init, true).catch((again: unknown) => {
        throw again instanceof StaleSocketError ? again.original : again;
      });
    }
  };

  const fetcher = async (href: string, init: FetcherRequestInit = {}): Promise<FetcherResponse> => {
    const url = new URL(href);
    const query = isQueryBody(init.body);
    if (!options.dedupe || !query || init.signal) return toResponse(await sendOnce(url, init, query));
    // Identical concurrent queries of the same viewer share one request: same subgraph, same body (query text
    // and variables) and same authorization. Only while it is in flight; nothing is kept afterwards.
    const key = `${href}\n${init.headers?.authorization ?? ''}\n${init.body as string}`;
    let shared = inFlight.get(key);
    if (!shared) {
      shared = sendOnce(url, init, true).finally(() => inFlight.delete(key));
      inFlight.set(key, shared);
    }
    return toResponse(await shared);
  };

  return Object.assign(fetcher, {
    close: () => {
      for (const agent of agents.values()) agent.destroy();
      agents.clear();
    },
  });
}

/** A fetch-like response over an answer already read; each caller gets its own (bodies are read once). */
function toResponse(answer: Answer): FetcherResponse {
  let used = false;
  const take = (): string => {
    if (used) throw new TypeError('the body of this response has already been read');
    used = true;
    return answer.body;
  };
  const response: FetcherResponse = {
    get bodyUsed() {
      return used;
    },
    url: answer.url,
    redirected: false,
    status: answer.status,
    ok: answer.status >= 200 && answer.status < 300,
    statusText: answer.statusText,
    headers: new AnswerHeaders(answer.headers),
    text: async () => take(),
    json: async (): Promise<unknown> => JSON.parse(take()),
    arrayBuffer: async () => {
      const bytes = Buffer.from(take());
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    },
    clone: () => toResponse(answer),
  };
  return response;
}

/** The response headers, read-mostly: Apollo only reads content-type and cache-control. */
class AnswerHeaders implements FetcherHeaders {
  private readonly map = new Map<string, string>();

  constructor(headers: IncomingHttpHeaders) {
    for (const [name, value] of Object.entries(headers)) {
      if (value !== undefined) this.map.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
  }

  append(name: string, value: string): void {
    const key = name.toLowerCase();
    const known = this.map.get(key);
    this.map.set(key, known === undefined ? value : `${known}, ${value}`);
  }
  delete(name: string): void {
    this.map.delete(name.toLowerCase());
  }
  get(name: string): string | null {
    return this.map.get(name.toLowerCase()) ?? null;
  }
  has(name: string): boolean {
    return this.map.has(name.toLowerCase());
  }
  set(name: string, value: string): void {
    this.map.set(name.toLowerCase(), value);
  }
  entries(): Iterator<[string, string]> {
    return this.map.entries();
  }
  keys(): Iterator<string> {
    return this.map.keys();
  }
  values(): Iterator<string> {
    return this.map.values();
  }
  [Symbol.iterator](): Iterator<[string, string]> {
    return this.map.entries();
  }
}
