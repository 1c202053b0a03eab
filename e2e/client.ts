// A plain GraphQL-over-HTTP client, as an integrator without our SDK would write it.
import { openAsBlob } from 'node:fs';
import { basename } from 'node:path';

export interface GraphQLErrorBody {
  message: string;
  path?: (string | number)[];
  extensions?: { code?: string; [key: string]: unknown };
}

export interface GraphQLResponse<T> {
  status: number;
  headers: Headers;
  data?: T | null;
  errors?: GraphQLErrorBody[];
}

export async function graphql<T = Record<string, unknown>>(
  baseUrl: string,
  query: string,
  options: { variables?: Record<string, unknown>; token?: string; headers?: Record<string, string> } = {},
): Promise<GraphQLResponse<T>> {
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: JSON.stringify({ query, variables: options.variables ?? {} }),
  });
  const body = (await res.json()) as { data?: T | null; errors?: GraphQLErrorBody[] };
  return { status: res.status, headers: res.headers, ...body };
}

/** The one error code of a response, for assertions. */
export const errorCode = (res: GraphQLResponse<unknown>): string | undefined => res.errors?.[0]?.extensions?.code;

let counter = 0;
/** A fresh, valid email for each test. */
export const uniqueEmail = (label = 'user'): string =>
  `${label}-${process.pid}-${Date.now().toString(36)}-${counter++}@example.com`;

export const PASSWORD = 'correct horse battery staple';

export interface SignedUp {
  id: string;
  email: string;
  token: string;
}

export async function signUpUser(gatewayUrl: string, email = uniqueEmail()): Promise<SignedUp> {
  const res = await graphql<{ signUp: { accessToken: string; user: { id: string; email: string } } }>(
    gatewayUrl,
    'mutation ($email: String!, $password: String!) { signUp(email: $email, password: $password) { accessToken user { id email } } }',
    { variables: { email, password: PASSWORD } },
  );
  if (!res.data?.signUp) throw new Error(`signUp failed: ${JSON.stringify(res.errors)}`);
  return { id: res.data.signUp.user.id, email: res.data.signUp.user.email, token: res.data.signUp.accessToken };
}

export const UPLOAD_VIDEO = `mutation ($file: Upload!) {
  uploadVideo(file: $file) {
    id kind filename contentType byteSize sha256 durationSeconds createdAt downloadUrl owner { id email }
  }
}`;

export interface UploadedMedia {
  id: string;
  kind: string;
  filename: string;
  contentType: string;
  byteSize: number;
  sha256: string;
  durationSeconds: number | null;
  createdAt: string;
  downloadUrl: string;
  owner: { id: string; email: string };
}

/**
 * Uploads a file from disk with the GraphQL multipart request spec, as any spec-following client does. The
 * file-backed Blob streams from disk: the test process never holds the file in memory either.
 */
export async function uploadFile(
  baseUrl: string,
  path: string,
  options: { token?: string; filename?: string; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<GraphQLResponse<{ uploadVideo: UploadedMedia }>> {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query: UPLOAD_VIDEO, variables: { file: null } }));
  form.set('map', JSON.stringify({ 0: ['variables.file'] }));
  form.set('0', await openAsBlob(path, { type: 'application/octet-stream' }), options.filename ?? basename(path));
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: {
      'apollo-require-preflight': 'true',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: form,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const text = await res.text();
  let body: { data?: { uploadVideo: UploadedMedia } | null; errors?: GraphQLErrorBody[] };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error(`upload answered ${res.status} with non-JSON: ${text.slice(0, 300)}`);
  }
  return { status: res.status, headers: res.headers, ...body };
}
