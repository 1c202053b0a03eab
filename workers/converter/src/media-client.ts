import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream/promises';
import {
  InternalApi,
  JobErrorCode,
  OutputUploadResponse,
  REQUEST_ID_HEADER,
  type OutputUploadHeaders,
} from '@vidmp3/shared';
import { PermanentError, TransientError } from './errors.js';

/** An upload that makes no progress this long is dropped (and retried later). */
const IDLE_TIMEOUT_MS = 60_000;
const MAX_RESPONSE_BYTES = 64 * 1024;

export interface CallContext {
  requestId?: string | undefined;
  signal?: AbortSignal | undefined;
}

/** Media's internal API for workers: read an input's bytes, store a job's mp3. */
export class MediaClient {
  private readonly base: string;

  constructor(
    baseUrl: string,
    private readonly token: string,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  /** Where ffmpeg reads the input: served with Range support, so it can seek (moov atom at the end). */
  contentUrl(mediaId: string): string {
    return `${this.base}${InternalApi.mediaContent.path(mediaId)}`;
  }

  /** Headers for every internal call (ffmpeg's reads included), with the job's request id when it has one. */
  authHeaders(requestId?: string): Record<string, string> {
    return { Authorization: `Bearer ${this.token}`, ...(requestId ? { [REQUEST_ID_HEADER]: requestId } : {}) };
  }

  /** For readiness: media's service answers (its own dependencies are its readiness, not ours). */
  async ping(): Promise<boolean> {
    try {
      const res = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(1_500) });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  /**
   * Streams the finished mp3 to media as the job's output. Idempotent per job on media's side: a second
   * upload for the same job returns the output stored first.
   */
  async uploadOutput(
    jobId: string,
    ownerId: string,
    sourceMediaId: string,
    filePath: string,
    context: CallContext = {},
  ): Promise<{ id: string }> {
    const { size } = await stat(filePath);
    const url = new URL(`${this.base}${InternalApi.outputUpload.path(jobId)}`);
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'PUT',
      headers: {
        ...this.authHeaders(context.requestId),
        ...({ 'x-owner-id': ownerId, 'x-source-media-id': sourceMediaId } satisfies OutputUploadHeaders),
        'content-type': 'audio/mpeg',
        'content-length': size,
      },
      signal: context.signal,
      timeout: IDLE_TIMEOUT_MS,
    });
    request.on('timeout', () => request.destroy(new Error('media did not answer in time')));
    const responded = new Promise<IncomingMessage>((resolve, reject) => {
      request.once('response', resolve);
      request.once('error', reject);
    });
    // media may answer (404) before it has read the whole body and close the connection: the answer decides,
    // not the failed send, so the send's error is only kept for when there is no answer.
    const sent = pipeline(createReadStream(filePath), request).then(
      () => undefined,
      (err: unknown) => err,
    );

    let response: IncomingMessage;
    try {
      response = await responded;
    } catch (err) {
      await sent;
      if (context.signal?.aborted) throw err;
      throw new TransientError('The converted audio could not be stored because the storage service was unavailable.', {
        cause: err,
      });
    }
    const body = await readSmall(response).catch(() => '');
    await sent;
    const status = response.statusCode ?? 0;
    if (status === 200 || status === 201) {
      const stored = parseStored(body);
      if (stored) return { id: stored.id };
      throw new TransientError('The storage service gave an unexpected answer.', { cause: new Error(body) });
    }
    // 410: the owner's account has been deleted (its job is gone too; the failure is only for the logs).
    if (status === 404 || status === 410) {
      throw new PermanentError(JobErrorCode.INPUT_GONE, 'The video to convert no longer exists.', {
        cause: new Error(`media answered 404: ${body}`),
      });
    }
    if (status === 413) {
      throw new PermanentError(
        JobErrorCode.UNSUPPORTED_MEDIA,
        'The converted audio is larger than the service stores.',
        {
          cause: new Error(`media answered 413: ${body}`),
        },
      );
    }
    // Media's 403 for an output that does not fit the owner's storage: another attempt would be refused too.
    if (status === 403 && errorCode(body) === 'QUOTA_EXCEEDED') {
      throw new PermanentError(
        JobErrorCode.QUOTA_EXCEEDED,
        'The mp3 would take you over your storage quota. Delete some media, then retry the conversion.',
        { cause: new Error(`media answered 403: ${body}`) },
      );
    }
    // 5xx, and 4xx that mean a fault of ours (a bad token, a bad request): another attempt, maybe on a worker
    // configured right, may succeed; the attempt count bounds the retries.
    throw new TransientError('The converted audio could not be stored; the conversion will be retried.', {
      cause: new Error(`media answered ${status}: ${body}`),
    });
  }
}

/** The `error` code of one of media's JSON error answers (`{ error, message, … }`), if it is one. */
function errorCode(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    return typeof parsed.error === 'string' ? parsed.error : undefined;
  } catch {
    return undefined;
  }
}

async function readSmall(response: IncomingMessage): Promise<string> {
  response.setEncoding('utf8');
  let text = '';
  for await (const chunk of response as AsyncIterable<string>) {
    text += chunk;
    if (text.length > MAX_RESPONSE_BYTES) {
      response.destroy();
      break;
    }
  }
  return text;
}

function parseStored(body: string): OutputUploadResponse | undefined {
  try {
    return OutputUploadResponse.parse(JSON.parse(body));
  } catch {
    return undefined;
  }
}
