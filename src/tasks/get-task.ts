import type { TaskRow } from '../../drizzle/schema.ts';
import type { DbOrTx } from '../db/client.ts';
import { findProjectTask } from '../db/sql/task-reads.ts';
import { notFound } from '../errors.ts';

/** A task of this project, or a 404: another project's task does not exist for the caller. */
export async function getTask(db: DbOrTx, projectId: string, taskId: string): Promise<TaskRow> {
  const row = await findProjectTask(db, projectId, taskId);
  if (!row) throw notFound();
  return row;
}
