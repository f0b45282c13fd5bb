import type { TaskRow, TaskStatus } from '../../drizzle/schema.ts';
import type { DbOrTx } from '../db/client.ts';
import { listTasksNewestFirst } from '../db/sql/task-reads.ts';
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
 * A page of the project's tasks, newest first (see listTasksNewestFirst for why the cursor is a
 * task id). One row more than the page is read, to know whether another page follows.
 */
export async function listTasks(db: DbOrTx, projectId: string, query: ListTasksQuery): Promise<TaskPage> {
  const rows = await listTasksNewestFirst(db, {
    projectId,
    statuses: query.statuses,
    provider: query.provider,
    metadata: query.metadata,
    beforeId: query.cursor ? decodeCursor(query.cursor) : undefined,
    limit: query.limit + 1,
    offset: query.cursor ? 0 : (query.offset ?? 0),
  });
  const hasMore = rows.length > query.limit;
  const page = hasMore ? rows.slice(0, query.limit) : rows;
  return { rows: page, hasMore, nextCursor: hasMore ? encodeCursor(page[page.length - 1].id) : null };
}
