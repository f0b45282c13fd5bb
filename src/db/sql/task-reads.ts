import { and, asc, desc, eq, gt, inArray, lt, sql, type SQL } from 'drizzle-orm';
import type postgres from 'postgres';
import { projects, type TaskEventRow, type TaskRow, type TaskStatus, taskEvents, tasks } from '../../../drizzle/schema.ts';
import type { DbOrTx } from '../client.ts';

/*
 * Reads of `tasks` and `task_events` off the hot path: a project's task and its page of tasks (the
 * API), a task's timeline, a task's submit answer (a held fal webhook), the statuses of watched
 * tasks (the change feed), and the task a job names (with its project's secret, for a delivery).
 * Every statement that writes a task, and the reads made inside those transitions, are with the
 * task statements (db/sql/tasks.ts).
 */

/** The task, if it belongs to this project: another project's task is not found. */
export async function findProjectTask(db: DbOrTx, projectId: string, taskId: string): Promise<TaskRow | undefined> {
  const [row] = await db
    .select()
    .from(tasks)
    .where(and(eq(tasks.id, taskId), eq(tasks.projectId, projectId)));
  return row;
}

export interface TaskFilter {
  projectId: string;
  statuses?: TaskStatus[];
  provider?: string;
  /** Tasks whose metadata holds all of these pairs (jsonb containment). */
  metadata?: Record<string, string>;
  /** Only tasks older than this task id (the keyset cursor). */
  beforeId?: string;
  limit: number;
  offset: number;
}

/**
 * Newest first. Task ids are UUID v7, so ordering by id is ordering by creation, and the keyset
 * cursor (`id < last`) stays stable while new tasks arrive, unlike an offset.
 */
export async function listTasksNewestFirst(db: DbOrTx, filter: TaskFilter): Promise<TaskRow[]> {
  const where: SQL[] = [eq(tasks.projectId, filter.projectId)];
  if (filter.statuses?.length) where.push(inArray(tasks.status, filter.statuses));
  if (filter.provider) where.push(eq(tasks.provider, filter.provider));
  if (filter.metadata && Object.keys(filter.metadata).length > 0) {
    where.push(sql`${tasks.metadata} @> ${JSON.stringify(filter.metadata)}::jsonb`);
  }
  if (filter.beforeId) where.push(lt(tasks.id, filter.beforeId));
  return db
    .select()
    .from(tasks)
    .where(and(...where))
    .orderBy(desc(tasks.id))
    .limit(filter.limit)
    .offset(filter.offset);
}

/** Up to `limit` events of the task after the event `afterId`, oldest first (keyset on the id). */
export async function listTaskEvents(db: DbOrTx, taskId: string, afterId: number, limit: number): Promise<TaskEventRow[]> {
  return db
    .select()
    .from(taskEvents)
    .where(and(eq(taskEvents.taskId, taskId), gt(taskEvents.id, afterId)))
    .orderBy(asc(taskEvents.id))
    .limit(limit);
}

/** The task's status and provider job (where its submit answer is recorded); undefined if it is gone. */
export async function findTaskProviderJob(db: DbOrTx, taskId: string): Promise<Pick<TaskRow, 'status' | 'providerJob'> | undefined> {
  const [row] = await db.select({ status: tasks.status, providerJob: tasks.providerJob }).from(tasks).where(eq(tasks.id, taskId));
  return row;
}

const TASK_STATUSES = 'select id, status from tasks where id = any($1::uuid[])';

/** The status of each task that still exists, by id: one prepared statement for any number of ids. */
export async function readTaskStatuses(sql: postgres.Sql, taskIds: string[]): Promise<Map<string, string>> {
  const rows = await sql.unsafe(TASK_STATUSES, [taskIds], { prepare: true });
  return new Map(rows.map((row) => [row.id as string, row.status as string]));
}

/** A task by id, whatever its project (job handlers: the job names the task). */
export async function findTask(db: DbOrTx, taskId: string): Promise<TaskRow | undefined> {
  const [row] = await db.select().from(tasks).where(eq(tasks.id, taskId));
  return row;
}

/** A task's status alone. */
export async function findTaskStatus(db: DbOrTx, taskId: string): Promise<TaskStatus | undefined> {
  const [row] = await db.select({ status: tasks.status }).from(tasks).where(eq(tasks.id, taskId));
  return row?.status;
}

/**
 * The task an onComplete job names (by id, or by the callback token that completed it) with its
 * project's sealed signing secret, as one delivery attempt needs them.
 */
export async function findTaskForDelivery(db: DbOrTx, by: { taskId: string } | { callbackHash: string }): Promise<{ task: TaskRow; secretSealed: string } | undefined> {
  const [found] = await db
    .select({ task: tasks, secretSealed: projects.webhookSecretSealed })
    .from(tasks)
    .innerJoin(projects, eq(projects.id, tasks.projectId))
    .where('taskId' in by ? eq(tasks.id, by.taskId) : eq(tasks.callbackHash, by.callbackHash));
  return found;
}
