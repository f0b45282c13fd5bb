import type postgres from 'postgres';
import type { TaskRow } from '../../drizzle/schema.ts';
import { createBatcher } from '../db/batcher.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import { runPlan } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { ACCEPTED_CALLBACK_JOBS, type CallbackConsume, consumeCallbacks } from '../db/sql/callbacks.ts';
import type { Jobs } from '../jobs/job-sql.ts';
import { type CallbackNotifyJob, Queues } from '../jobs/queues.ts';
import type { Timings } from '../timings.ts';

/** What the hot statement decided for a known token, with the task as it now is. */
export interface ConsumedRow {
  outcome: 'accepted' | 'duplicate' | 'conflict' | 'late' | 'classify';
  task: TaskRow;
}

/** The onComplete job of an accepted callback: it names the request, so only that one acts on it. */
export const notifyJobOf = (c: CallbackConsume): CallbackNotifyJob => ({ callbackHash: c.tokenHash, ref: c.ref, generation: 0, attempt: 1 });

/**
 * Consumes callbacks; those arriving together share one statement (db/batcher.ts), and the
 * onComplete jobs of the accepted ones ride in it. Resolves with undefined for an unknown token.
 * The job is delayed: the first attempt is made at once by prompt delivery; the job only backs
 * it up should this process die first.
 */
export function createCallbackConsumer(deps: { sql: postgres.Sql; jobs: Jobs; timings: Timings; changes: Pick<ChangeFeed, 'publish'> }) {
  const write = async (callbacks: CallbackConsume[]): Promise<Array<ConsumedRow | undefined>> => {
    const plan = await deps.jobs.where(consumeCallbacks(callbacks), {
      queue: Queues.notify,
      // The job's id is the request's ref: prompt delivery can bring a job forward by it (spill).
      jobs: callbacks.map((c) => ({ id: c.ref, data: notifyJobOf(c), startAfter: deps.timings.promptFallbackSeconds })),
      keep: ACCEPTED_CALLBACK_JOBS,
    });
    const rows = await runPlan(deps.sql, plan);
    deps.changes.publish(rows.filter((row) => row.outcome === 'accepted').map((row) => row.id as string));
    const byToken = new Map(rows.map((row) => [row.callback_hash as string, row]));
    return callbacks.map((c) => {
      const row = byToken.get(c.tokenHash);
      return row ? { outcome: row.outcome as ConsumedRow['outcome'], task: toTaskRow(row) } : undefined;
    });
  };
  return createBatcher({ many: write });
}
