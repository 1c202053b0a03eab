import { InvalidArgumentError } from 'commander';
import type { Context } from '../context.js';
import type { ApiKey, ApiKeyScope } from '../sdk.js';

export interface CreateKeyFlags {
  scope: ApiKeyScope[];
}

/** `--scope read,convert` → the API's scopes; CONVERT includes READ on the server. */
export function parseScopes(value: string): ApiKeyScope[] {
  const scopes = value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
  if (scopes.length === 0) throw new InvalidArgumentError('Expected read, convert or read,convert.');
  const unknown = scopes.filter((s) => s !== 'read' && s !== 'convert');
  if (unknown.length > 0) throw new InvalidArgumentError(`Unknown scope ${unknown.join(', ')}: use read or convert.`);
  return [...new Set(scopes)].map((s) => s.toUpperCase() as ApiKeyScope);
}

const scopeList = (key: ApiKey) => key.scopes.map((s) => s.toLowerCase()).join(',');

/**
 * Creates a key and prints it, once: alone on stdout (so `KEY=$(vidmp3 keys create ci)` works), the advice on
 * stderr. Needs a logged-in session (an API key cannot create keys).
 */
export async function createKey(ctx: Context, name: string, flags: CreateKeyFlags): Promise<void> {
  const client = await ctx.authedClient();
  const created = await client.createApiKey(name, flags.scope);
  if (!ctx.json) {
    ctx.warn(
      `Created API key "${created.apiKey.name}" (${created.apiKey.id}, ${scopeList(created.apiKey)}). ` +
        'It is shown only this once: keep it in a secret store and use it as VIDMP3_API_KEY.',
    );
  }
  ctx.print({ key: created.key, apiKey: created.apiKey }, created.key);
}

/** One row per key: id, name, scopes, created, last used (never the key itself: the server does not have it). */
export function formatKeysTable(keys: readonly ApiKey[]): string[] {
  if (keys.length === 0) return ['No API keys. Create one with `vidmp3 keys create <name> --scope read,convert`.'];
  const day = (iso: string | null) => (iso ? iso.slice(0, 16).replace('T', ' ') : 'never');
  const header = ['ID', 'NAME', 'SCOPES', 'CREATED', 'LAST USED'];
  const rows = keys.map((k) => [k.id, k.name, scopeList(k), day(k.createdAt), day(k.lastUsedAt)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((cells) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}

export async function listKeys(ctx: Context): Promise<void> {
  const client = await ctx.authedClient();
  const keys = await client.apiKeys();
  ctx.print({ apiKeys: keys }, formatKeysTable(keys));
}

export async function revokeKey(ctx: Context, id: string): Promise<void> {
  const client = await ctx.authedClient();
  await client.revokeApiKey(id);
  ctx.print({ revoked: id }, `Revoked API key ${id}`);
}
