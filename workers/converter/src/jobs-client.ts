import { ClaimResponse, InternalApi, REQUEST_ID_HEADER, type ClaimRequest } from '@vidmp3/shared';
import { TransientError } from './errors.js';
import type { CallContext } from './media-client.js';

const CLAIM_TIMEOUT_MS = 10_000;

/** Jobs' internal API for workers. */
export class JobsClient {
  private readonly base: string;

  constructor(
    baseUrl: string,
    private readonly token: string,
    private readonly workerId: string,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  /**
   * Asks whether this attempt of the job may run here. No when the job was cancelled, is already running
   * elsewhere (a duplicated request), belongs to an older attempt, or does not exist.
   */
  async claim(jobId: string, attempt: number, redelivered: boolean, context: CallContext = {}): Promise<ClaimResponse> {
    const signals = [AbortSignal.timeout(CLAIM_TIMEOUT_MS), ...(context.signal ? [context.signal] : [])];
    let response: Response;
    try {
      response = await fetch(`${this.base}${InternalApi.claim.path(jobId)}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.token}`,
          'content-type': 'application/json',
          ...(context.requestId ? { [REQUEST_ID_HEADER]: context.requestId } : {}),
        },
        body: JSON.stringify({ attempt, workerId: this.workerId, redelivered } satisfies ClaimRequest),
        signal: AbortSignal.any(signals),
      });
    } catch (err) {
      if (context.signal?.aborted) throw err;
      throw new TransientError('The job service could not be reached; the conversion will be retried.', {
        cause: err,
      });
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return { proceed: false, reason: 'the job does not exist' };
    }
    const text = await response.text().catch(() => '');
    if (response.status !== 200) {
      throw new TransientError('The job service could not be reached; the conversion will be retried.', {
        cause: new Error(`jobs answered ${response.status}: ${text.slice(0, 500)}`),
      });
    }
    try {
      return ClaimResponse.parse(JSON.parse(text));
    } catch (err) {
      throw new TransientError('The job service gave an unexpected answer; the conversion will be retried.', {
        cause: err,
      });
    }
  }
}
