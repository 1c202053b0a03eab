import { ErrorCode, userError } from './errors.js';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/** A position in a newest-first list: opaque to clients, stable under inserts. */
export interface Position {
  createdAt: Date;
  id: string;
}

export const encodeCursor = (p: Position): string =>
  Buffer.from(JSON.stringify([p.createdAt.toISOString(), p.id])).toString('base64url');

export function decodeCursor(cursor: string): Position {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string') {
      const createdAt = new Date(value[0]);
      if (!Number.isNaN(createdAt.getTime())) return { createdAt, id: value[1] };
    }
  } catch {
    // fall through: any undecodable cursor is the client's mistake
  }
  throw userError(ErrorCode.BAD_USER_INPUT, 'The `after` cursor is not one this API returned', { field: 'after' });
}

/** Validates `first`/`after` into a page size and a start position. */
export function pageArgs(first: number | null | undefined, after: string | null | undefined) {
  const size = first ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(size) || size < 0 || size > MAX_PAGE_SIZE) {
    throw userError(ErrorCode.BAD_USER_INPUT, `\`first\` must be between 0 and ${MAX_PAGE_SIZE}`, { field: 'first' });
  }
  return { size, after: after ? decodeCursor(after) : null };
}

/** Builds a connection from up to size+1 rows (the extra row only says there is a next page). */
export function connection<T extends Position>(rows: T[], size: number) {
  const page = rows.slice(0, size);
  const edges = page.map((node) => ({ cursor: encodeCursor(node), node }));
  return { edges, pageInfo: { hasNextPage: rows.length > size, endCursor: edges.at(-1)?.cursor ?? null } };
}
