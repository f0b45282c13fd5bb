import { and, eq, inArray, sql } from 'drizzle-orm';
import type { PgBoss } from 'pg-boss';
import { type StoredError, type StoredResult, type TaskRow, type TaskStatus, tasks } from '../../drizzle/schema.ts';
import type { Tx } from '../db/client.ts';
import { enqueue, Queues } from '../jobs/queues.ts';
import { type NewEvent, recordEvents } from './events.ts';

/** Statuses in which a provider's callback or a signal is accepted (DESIGN §5). */
export const CALLBACK_STATUSES: TaskStatus[] = ['pending', 'processing', 'waiting', 'polling'];
export const NON_TERMINAL_STATUSES: TaskStatus[] = ['delayed', ...CALLBACK_STATUSES];
export const TERMINAL_STATUSES: TaskStatus[] = ['completed', 'failed', 'timeout', 'cancelled'];
export type TerminalStatus = 'completed' | 'failed' | 'timeout' | 'cancelled';

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export interface FinishArgs {
  taskId: string;
  /** The compare-and-set guard: the task must be in one of these. */
  from: TaskStatus[];
  to: TerminalStatus;
  result?: StoredResult | null;
  error?: StoredError | null;
  /** Extra columns to set in the same UPDATE (e.g. the accepted callback's body hash). */
  set?: Partial<typeof tasks.$inferInsert>;
  /** Timeline events recorded before the status change. */
  events?: NewEvent[];
}

/**
 * Moves a task to a terminal status, if and only if it is still in one of `from`. The first
 * terminal writer wins; a later one gets null and changes nothing. In the same transaction it
 * records the timeline and enqueues the onComplete delivery, so a committed completion always
 * has its webhook on the way and a rolled-back one never does.
 */
export async function finishTask(boss: PgBoss, tx: Tx, args: FinishArgs): Promise<TaskRow | null> {
  const [row] = await tx
    .update(tasks)
    .set({
      ...args.set,
      status: args.to,
      ...(args.result !== undefined ? { result: args.result } : {}),
      ...(args.error !== undefined ? { error: args.error } : {}),
      completedAt: sql`now()`,
      updatedAt: sql`now()`,
      deliveryStatus: sql`case when ${tasks.onCompleteUrl} is not null then 'pending' end`,
      deliveryAttempts: 0,
    })
    .where(and(eq(tasks.id, args.taskId), inArray(tasks.status, args.from)))
    .returning();
  if (!row) return null;
  await recordEvents(tx, row.id, [...(args.events ?? []), { type: 'status.changed', data: { to: args.to } }]);
  if (row.onCompleteUrl) {
    await enqueue(boss, tx, Queues.notify, { taskId: row.id, generation: row.deliveryGeneration, attempt: 1 });
  }
  return row;
}
