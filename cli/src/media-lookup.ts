// The SDK has no `media(id)` method; `vidmp3 download <mediaId>` asks the API directly for the one field set.
import { CliError, ExitCode, exitCodeFor } from './errors.js';
import type { Media } from './sdk.js';

const MEDIA_QUERY = `query Media($id: ID!) {
  media(id: $id) { id kind filename contentType byteSize sha256 durationSeconds createdAt downloadUrl }
}`;

interface Answer {
  data?: { media: Media | null } | null;
  errors?: { message?: string; extensions?: { code?: string } }[];
}

export async function fetchMedia(url: string, token: string, id: string): Promise<Media | null> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: MEDIA_QUERY, variables: { id } }),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new CliError(`cannot reach ${new URL(url).origin} (${cause})`, ExitCode.NETWORK, 'NETWORK_ERROR');
  }
  const answer = (await res.json().catch(() => ({}))) as Answer;
  const error = answer.errors?.[0];
  if (error) {
    const code = error.extensions?.code ?? 'INTERNAL';
    if (code === 'NOT_FOUND') return null;
    throw new CliError(error.message ?? code, exitCodeFor(code), code);
  }
  if (!res.ok || !answer.data) {
    throw new CliError(`the server answered ${res.status}`, ExitCode.NETWORK, 'NETWORK_ERROR');
  }
  return answer.data.media;
}
