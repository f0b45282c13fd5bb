import type postgres from 'postgres';
import type { TaskRow } from '../../drizzle/schema.ts';
import { createBatcher } from '../db/batcher.ts';
import type { ChangeFeed } from '../db/change-feed.ts';
import { combinePlans, type Plan, runPlan, transact } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { CHANGED_TASK_JOBS, claimForDispatch, type Transition, transitions } from '../db/sql/tasks.ts';
import type { Jobs, JobSpec } from '../jobs/job-sql.ts';
import type { QueueName } from '../jobs/queues.ts';

/**
 * Moves a task to `processing` (from `delayed`/`pending`, or again for a retry) and records the
 * change. Resolves with null when there is nothing to do: the task was cancelled, already
 * answered, or is gone (a duplicate or stale job). The claims of a batch of dispatch jobs are
 * one statement (db/batcher.ts).
 */
export function createDispatchClaimer({ sql, changes }: { sql: postgres.Sql; changes: Pick<ChangeFeed, 'publish'> }): (taskId: string) => Promise<TaskRow | null> {
  const claim = async (taskIds: string[]): Promise<Array<TaskRow | null>> => {
    const { claimed: rows } = await transact(sql, { claimed: claimForDispatch(taskIds) });
    // A retry's claim leaves the task `processing`: only the first one changes its status.
    changes.publish(rows.filter((row) => row.previous_status !== 'processing').map((row) => row.id as string));
    const byId = new Map(rows.map((row) => [row.id as string, row]));
    return taskIds.map((id) => {
      const row = byId.get(id);
      return row ? toTaskRow(row) : null;
    });
  };
  return createBatcher({ many: claim });
}

/** The job that follows a dispatch outcome, of any queue. */
export type FollowUpJob = { [Q in QueueName]: { queue: Q; insert: JobSpec<Q> } }[QueueName];

/** What an attempt's answer changes: one compare-and-set, and the job that follows it, if any. */
export interface DispatchOutcome {
  change: Transition;
  job?: FollowUpJob;
}

/**
 * Writes dispatch outcomes; those recorded together are one transaction of one statement per
 * kind of follow-up job (the transitions of a kind, folded with their jobs). A follow-up job is
 * written only for the tasks whose compare-and-set held: an answer that lost the race to a
 * callback leaves no onComplete (or retry, or deadline) job behind. A task appears once per batch
 * (its claim and its attempt are one job), else `transitions` refuses the batch and each outcome
 * is written alone.
 */
export function createOutcomeRecorder(deps: { sql: postgres.Sql; jobs: Jobs; changes: Pick<ChangeFeed, 'publish'> }): (outcome: DispatchOutcome) => Promise<void> {
  const write = async (outcomes: DispatchOutcome[]): Promise<void[]> => {
    const byQueue = new Map<QueueName | undefined, DispatchOutcome[]>();
    for (const o of outcomes) {
      const group = byQueue.get(o.job?.queue);
      if (group) group.push(o);
      else byQueue.set(o.job?.queue, [o]);
    }
    const plans: Plan[] = [];
    for (const [queue, group] of byQueue) {
      const change = transitions(group.map((o) => o.change));
      if (!queue) {
        plans.push({ statements: [change] });
        continue;
      }
      const jobs = group.map((o) => o.job!.insert) as JobSpec<QueueName>[];
      plans.push(await deps.jobs.where(change, { queue, jobs, keep: CHANGED_TASK_JOBS }));
    }
    await runPlan(deps.sql, combinePlans(...plans));
    // Retries stay `processing`; a guard that missed only makes a watcher re-read.
    deps.changes.publish(outcomes.filter((o) => o.change.to !== 'processing').map((o) => o.change.taskId));
    return outcomes.map(() => undefined);
  };
  return createBatcher({ many: write });
}
