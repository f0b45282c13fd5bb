import { and, eq, inArray, sql } from 'drizzle-orm';
import { type StoredError, type StoredResult, type TaskRow, type TaskStatus, tasks } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { jobStatement, type Statement, statementOf } from '../db/pipeline.ts';
import { Queues } from '../jobs/queues.ts';
import { eventsStatement, type NewEvent } from './events.ts';

/** Statuses in which a provider's callback or a signal is accepted (DESIGN §5). */
export const CALLBACK_STATUSES: TaskStatus[] = ['pending', 'processing', 'waiting', 'polling'];
export const NON_TERMINAL_STATUSES: TaskStatus[] = ['delayed', ...CALLBACK_STATUSES];
export const TERMINAL_STATUSES: TaskStatus[] = ['completed', 'failed', 'timeout', 'cancelled'];
export type TerminalStatus = 'completed' | 'failed' | 'timeout' | 'cancelled';

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export interface FinishArgs {
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
 * The statements that move a locked task to a terminal status: the compare-and-set UPDATE
 * (first statement; its RETURNING row is the finished task), the timeline, and the onComplete
 * job, all for one transaction, so a committed completion always has its webhook on the way
 * and a rolled-back one never does. The caller holds the row lock (see `withLock`) and has
 * checked `task.status` is in `from`; the guard stays in the WHERE all the same.
 */
export async function finishStatements(relay: Relay, task: TaskRow, args: FinishArgs): Promise<Statement[]> {
  const update = statementOf(
    relay.db
      .update(tasks)
      .set({
        ...args.set,
        status: args.to,
        ...(args.result !== undefined ? { result: args.result } : {}),
        ...(args.error !== undefined ? { error: args.error } : {}),
        completedAt: sql`now()`,
        updatedAt: sql`now()`,
        deliveryStatus: task.onCompleteUrl ? 'pending' : null,
        deliveryAttempts: 0,
      })
      .where(and(eq(tasks.id, task.id), inArray(tasks.status, args.from)))
      .returning(),
  );
  const statements = [
    update,
    eventsStatement(relay.db, task.id, [...(args.events ?? []), { type: 'status.changed', data: { from: task.status, to: args.to } }]),
  ];
  if (task.onCompleteUrl) {
    statements.push(await jobStatement(relay.boss, Queues.notify, { taskId: task.id, generation: task.deliveryGeneration, attempt: 1 }));
  }
  return statements;
}
