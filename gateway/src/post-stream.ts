import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

// A connection of its own for every upload, closed after it: never Node's global keep-alive pool. A refused
// upload's connection still carries the part of its body that was not read; handed to the next upload — anyone's
// — it made that one fail with ECONNRESET (issue #10, defect 8). One TCP handshake per upload is nothing.
const uploadAgents = { http: new HttpAgent({ keepAlive: false }), https: new HttpsAgent({ keepAlive: false }) };

/**
 * POSTs a streamed body and reads the (small, JSON) answer. Plain node:http rather than fetch: fetch turns
 * the body into a web stream that read the whole upload ahead into memory when the subgraph was slower than
 * the client (measured: gateway RSS grew with the file); `pipeline` into the request keeps exactly one
 * socket's worth in flight. The answer may come before the body is sent (the subgraph refused early): then
 * the rest of the body is not sent, and the connection is closed.
 */
export async function postStream(
  url: URL,
  headers: Record<string, string>,
  body: AsyncIterable<Buffer>,
  signal: AbortSignal,
): Promise<{ status: number; body: string }> {
  const https = url.protocol === 'https:';
  const upstream = (https ? httpsRequest : httpRequest)(url, {
    method: 'POST',
    headers: { ...headers, connection: 'close' },
    agent: https ? uploadAgents.https : uploadAgents.http,
    signal,
  });
  const answered = new Promise<IncomingMessage>((resolve, reject) => {
    upstream.once('response', resolve);
    upstream.once('error', reject);
  });
  // Settled at once (never left rejected unheard): resolves with the body's failure, if it failed.
  const sendFailure = pipeline(Readable.from(body), upstream).then(
    () => undefined,
    (err: unknown) => err,
  );
  let response: IncomingMessage;
  try {
    response = await answered;
  } catch (err) {
    // When the body is what failed, its error says why; the request's own error is only the consequence.
    throw (await sendFailure) ?? err;
  }
  try {
    let text = '';
    for await (const chunk of response as AsyncIterable<Buffer>) {
      text += chunk.toString('utf8');
      if (text.length > MAX_RESPONSE_BYTES) throw new Error('the subgraph answer is too large');
    }
    return { status: response.statusCode ?? 0, body: text };
  } finally {
    // Answered before the whole body went out: whatever was not sent no longer matters; stop sending it.
    if (!upstream.writableFinished) upstream.destroy();
  }
}
