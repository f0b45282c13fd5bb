import type postgres from 'postgres';
import type { TaskRow } from '../../drizzle/schema.ts';
import { createBatcher } from '../db/batcher.ts';
import { type Statement, transact } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { insertTasks, type TaskInsert } from '../db/sql/tasks.ts';
import { foldJobDeferringNotify, type Jobs, type JobSpec, type Wake } from '../jobs/job-sql.ts';
import { Queues } from '../jobs/queues.ts';

/** A new task as written: the row, its first events and its first dispatch job. */
export interface NewTask extends TaskInsert {
  /** The `task.dispatch` job (its `startAfter` is the task's `delayUntil`, if any). */
  job: JobSpec<'task.dispatch'>;
  /** Due later: its job needs no wake-up now. */
  delayed: boolean;
}

/**
 * The tasks and their dispatch jobs in one statement (pg-boss's job INSERT folded into ours), and
 * the wake-up owed to the dispatch workers once it has committed.
 */
export async function insertTaskStatements(jobs: Jobs, tasks: NewTask[]): Promise<{ statements: Statement[]; wake?: Wake }> {
  const insert = await jobs.insert(Queues.dispatch, tasks.map((t) => t.job));
  const { statements, wake } = foldJobDeferringNotify(insertTasks(tasks), insert);
  return { statements, wake: tasks.some((t) => !t.delayed) ? wake : undefined };
}

/**
 * Writes new tasks; concurrent calls share one statement (see db/batcher.ts). Resolves with the
 * row as stored; rejects with the database's error (a revoked key: a not-null violation).
 */
export function createTaskWriter(deps: { sql: postgres.Sql; jobs: Jobs }) {
  const write = async (tasks: NewTask[]): Promise<TaskRow[]> => {
    const { statements, wake } = await insertTaskStatements(deps.jobs, tasks);
    const { inserted: rows } = await transact(deps.sql, { inserted: statements });
    deps.jobs.wake(wake);
    const byId = new Map(rows.map((row) => [row.id as string, row]));
    // Every task is in `rows` once the statement succeeded: it inserts all of them or fails.
    return tasks.map((t) => toTaskRow(byId.get(t.values.id)!));
  };
  return createBatcher<NewTask, TaskRow>({ many: write });
}
