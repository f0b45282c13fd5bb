import type postgres from 'postgres';
import type { TaskRow } from '../../drizzle/schema.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import type { CallbackConsume } from '../db/sql/callbacks.ts';
import type { DeliveryRecord } from '../db/sql/deliveries.ts';
import type { Jobs } from '../jobs/job-sql.ts';
import type { Timings } from '../timings.ts';
import { type ConsumedRow, createCallbackConsumer } from './callbacks.ts';
import { createDeliveryRecorder } from './deliveries.ts';
import { createDispatchClaimer, createOutcomeRecorder, type DispatchOutcome } from './dispatch.ts';
import { createTaskWriter, type NewTask } from './tasks.ts';

/**
 * The hot writes of a task's life, each a group-commit batcher (db/batcher.ts): calls made at the
 * same moment share one statement, so a burst costs a handful of round trips, not one each.
 */
export interface Writers {
  /** Writes a new task with its dispatch job; dropped unwritten if `signal` aborts first. */
  task: (task: NewTask, signal?: AbortSignal) => Promise<TaskRow>;
  /** Claims a task for a dispatch attempt (null: nothing to dispatch). */
  claim: (taskId: string) => Promise<TaskRow | null>;
  /** Writes what a dispatch attempt's answer changes, with its follow-up job. */
  outcome: (outcome: DispatchOutcome) => Promise<void>;
  /** Consumes a provider's callback (undefined: unknown token), with the onComplete job of an accepted one. */
  callback: (callback: CallbackConsume) => Promise<ConsumedRow | undefined>;
  /** Records an onComplete attempt that schedules no retry. */
  delivery: (record: DeliveryRecord) => Promise<void>;
}

export function createWriters(deps: { sql: postgres.Sql; jobs: Jobs; timings: Timings; changes: Pick<ChangeFeed, 'publish'> }): Writers {
  return {
    task: createTaskWriter(deps),
    claim: createDispatchClaimer(deps),
    outcome: createOutcomeRecorder(deps),
    callback: createCallbackConsumer(deps),
    delivery: createDeliveryRecorder(deps.sql),
  };
}
