import { and, eq } from 'drizzle-orm';
import { type TaskRow, tasks } from '../../drizzle/schema.ts';
import type { DbOrTx } from '../db/client.ts';
import { notFound } from '../errors.ts';

/** A task of this project, or a 404: another project's task does not exist for the caller. */
export async function getTask(db: DbOrTx, projectId: string, taskId: string): Promise<TaskRow> {
  const [row] = await db
    .select()
    .from(tasks)
    .where(and(eq(tasks.id, taskId), eq(tasks.projectId, projectId)));
  if (!row) throw notFound();
  return row;
}
