import type { JobKeep } from '../../jobs/job-sql.ts';
import type { Statement } from '../pipeline.ts';
import { eventsParam, type NewEvent } from './events.ts';

/*
 * The poll engine's columns of tasks (provider_job, poll_count): constant SQL shaped
 * `with … select …` so a pg-boss job folds into it (jobs/job-sql.ts foldJob).
 */

/** The provider's job as the relay knows it once the submit answered. Nothing in it is a credential. */
export interface ProviderJob {
  pollUrl: string;
  /** Rendered against the submit answer; `{pollResult.…}` references are left for poll time. */
  resultUrlTemplate?: string;
  cancel?: { url: string; method: string };
  /** ISO time at which polling ends the task as `timeout`. */
  deadline: string;
  /** `interval`: polling is the channel; `fallback`: a callback is expected, polls are the safety net. */
  schedule: 'interval' | 'fallback';
  /** The provider's id of the request (the preset's `requestIdPath` in the submit answer), when it has one. */
  requestId?: string;
}


const START = `
  with started as (
    update tasks set provider_job = $2::jsonb, poll_count = 0, updated_at = now()
    where id = $1 and status = $3
    returning id
  )
  select id from started`;

/** The first poll job is written only if `recordProviderJob` recorded the provider's job. */
export const POLLING_STARTED_JOBS: JobKeep = {
  sql: `exists (select 1 from started)`,
  keeps: (rows) => () => rows.length > 0,
};

/** Records the provider's job on a task that just moved to `status` (no row if it did not). */
export function recordProviderJob(taskId: string, job: ProviderJob, status: string): Statement {
  return { text: START, params: [taskId, JSON.stringify(job), status] };
}

const NEXT = `
  with bumped as (
    update tasks set poll_count = $2::integer + 1, updated_at = now()
    where id = $1 and poll_count = $2::integer and status in ('waiting', 'polling')
    returning id
  ), recorded as (
    insert into task_events (task_id, type, data)
    select bumped.id, e->>'type', e->'data' from bumped, jsonb_array_elements($3::jsonb) e
  )
  select id from bumped`;

/** Counts poll number `poll` as made, with its timeline, if it is still the expected one. */
export function countPoll(taskId: string, poll: number, recorded: NewEvent[]): Statement {
  return { text: NEXT, params: [taskId, poll, eventsParam(recorded)] };
}
