// GraphQL over HTTP with fetch: JSON requests, and answers (or failures) turned into data or a Vidmp3Error.
import { fromGraphQLErrors, fromHttpStatus, networkError, Vidmp3Error, type GraphQLErrorBody } from './errors.js';
import type { HttpAnswer } from './platform.js';
import type { DownloadOptions } from './types.js';

export const REQUEST_ID_HEADER = 'x-request-id';

/** The data of a GraphQL answer, or its first error as a Vidmp3Error carrying the request id. */
export function graphqlData<T>(answer: HttpAnswer): T {
  const requestId = answer.header(REQUEST_ID_HEADER);
  let body: { data?: T | null; errors?: GraphQLErrorBody[] };
  try {
    body = JSON.parse(answer.text) as typeof body;
  } catch {
    throw fromHttpStatus(answer.status, answer.statusText, requestId);
  }
  if (Array.isArray(body.errors) && body.errors.length > 0) {
    throw fromGraphQLErrors(body.errors, { requestId, status: answer.status });
  }
  if (answer.status >= 400 || body.data === undefined || body.data === null) {
    throw fromHttpStatus(answer.status, answer.statusText, requestId);
  }
  return body.data;
}

export async function fetchAnswer(url: string, init: RequestInit): Promise<HttpAnswer> {
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, init);
    text = await res.text();
  } catch (err) {
    throw networkError(err, url);
  }
  return {
    status: res.status,
    statusText: res.statusText,
    header: (name) => res.headers.get(name) ?? undefined,
    text,
  };
}

/** GETs a URL, failing with a Vidmp3Error unless it answers 2xx with a body. */
export async function fetchOk(url: string, signal: AbortSignal | undefined): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, signal ? { signal } : {});
  } catch (err) {
    throw networkError(err, url);
  }
  if (!res.ok || !res.body) {
    const requestId = res.headers.get(REQUEST_ID_HEADER) ?? undefined;
    // The files route answers errors with a small JSON body: { error, message }.
    const body = (await res.json().catch(() => ({}))) as { error?: unknown; message?: unknown };
    const fallback = fromHttpStatus(res.status, res.statusText, requestId);
    const code = res.status === 403 ? 'UNAUTHENTICATED' : fallback.code;
    const message = typeof body.message === 'string' ? body.message : fallback.message;
    throw new Vidmp3Error(code, message, { status: res.status, requestId });
  }
  return res;
}

export const contentLength = (res: Response): number | undefined => {
  const value = Number(res.headers.get('content-length') ?? NaN);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
};

/** Reads a download into a Blob, reporting progress (the browser way: the bytes end up in memory anyway). */
export async function downloadBlob(url: string, options: DownloadOptions): Promise<Blob> {
  const res = await fetchOk(url, options.signal);
  const total = contentLength(res);
  // A fetch body's chunks are backed by plain ArrayBuffers (never a SharedArrayBuffer), which is what a BlobPart
  // needs: the DOM types say so (Uint8Array<ArrayBuffer>), and Node's leave the chunks untyped.
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let loaded = 0;
  try {
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      loaded += value.byteLength;
      options.onProgress?.({ loaded, total });
    }
  } catch (err) {
    throw networkError(err, url);
  }
  return new Blob(parts, { type: res.headers.get('content-type') ?? 'application/octet-stream' });
}
