import { and, desc, eq, inArray, lt, sql, type SQL } from 'drizzle-orm';
import { type TaskRow, type TaskStatus, tasks } from '../../drizzle/schema.ts';
import type { DbOrTx } from '../db/client.ts';
import { invalid } from '../errors.ts';

export interface ListTasksQuery {
  statuses?: TaskStatus[];
  provider?: string;
  metadata?: Record<string, string>;
  limit: number;
  cursor?: string;
  offset?: number;
}

export interface TaskPage {
  rows: TaskRow[];
  hasMore: boolean;
  nextCursor: string | null;
}

/** Cursors are opaque to clients: the base64url of the last task id seen. */
export function encodeCursor(id: string): string {
  return Buffer.from(id).toString('base64url');
}

function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) throw invalid('Invalid cursor');
  return id;
}

/**
 * Newest first. Task ids are UUID v7, so ordering by id is ordering by creation, and the keyset
 * cursor (`id < last`) stays stable while new tasks arrive, unlike an offset.
 */
export async function listTasks(db: DbOrTx, projectId: string, query: ListTasksQuery): Promise<TaskPage> {
  const where: SQL[] = [eq(tasks.projectId, projectId)];
  if (query.statuses?.length) where.push(inArray(tasks.status, query.statuses));
  if (query.provider) where.push(eq(tasks.provider, query.provider));
  if (query.metadata && Object.keys(query.metadata).length > 0) {
    where.push(sql`${tasks.metadata} @> ${JSON.stringify(query.metadata)}::jsonb`);
  }
  if (query.cursor) where.push(lt(tasks.id, decodeCursor(query.cursor)));
  const rows = await db
    .select()
    .from(tasks)
    .where(and(...where))
    .orderBy(desc(tasks.id))
    .limit(query.limit + 1)
    .offset(query.cursor ? 0 : (query.offset ?? 0));
  const hasMore = rows.length > query.limit;
  const page = hasMore ? rows.slice(0, query.limit) : rows;
  return { rows: page, hasMore, nextCursor: hasMore ? encodeCursor(page[page.length - 1].id) : null };
}
