import type { StoredError, StoredResult, TaskRow, TaskStatus } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { type Statement } from '../db/pipeline.ts';
import { foldJob } from '../jobs/job-sql.ts';
import { transition } from '../db/sql/tasks.ts';
import { Queues } from '../jobs/queues.ts';
import type { NewEvent } from '../db/sql/events.ts';

/** Statuses in which a provider's callback or a signal is accepted (DESIGN §5). */
export const CALLBACK_STATUSES: TaskStatus[] = ['pending', 'processing', 'waiting', 'polling'];
export const TERMINAL_STATUSES: TaskStatus[] = ['completed', 'failed', 'timeout', 'cancelled'];
export type TerminalStatus = 'completed' | 'failed' | 'timeout' | 'cancelled';

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export interface FinishArgs {
  to: TerminalStatus;
  result?: StoredResult | null;
  error?: StoredError | null;
  /** Set with the change: the hash of the accepted callback body. */
  callbackBodyHash?: string;
  /** Timeline events recorded before the status change. */
  events?: NewEvent[];
}

/**
 * The statements that move a locked task to a terminal status: the compare-and-set transition
 * (first statement; its row is the finished task) with its timeline, and the onComplete job, for
 * one transaction, so a committed completion always has its webhook on the way and a rolled-back
 * one never does. The caller holds the row lock (see `withLock`), so `task.status` is current.
 */
export async function finishStatements(relay: Relay, task: TaskRow, args: FinishArgs): Promise<Statement[]> {
  const change = transition({
    taskId: task.id,
    from: [task.status],
    to: args.to,
    result: args.result,
    error: args.error,
    callbackBodyHash: args.callbackBodyHash,
    events: args.events,
  });
  return task.onCompleteUrl ? foldJob(change, await notifyJob(relay, task.id, task.deliveryGeneration)) : [change];
}

/** The first onComplete attempt of a delivery round. */
export function notifyJob(relay: Relay, taskId: string, generation: number): Promise<Statement> {
  return relay.jobs.send(Queues.notify, { taskId, generation, attempt: 1 });
}
