import type { Statement } from '../pipeline.ts';

/*
 * task_events: a task's timeline. Hot-path statements that append to it; each runs inside the
 * transaction of the change it describes. (Reads of the timeline: db/sql/task-reads.ts.)
 */

/**
 * Timeline event types, dotted. Recorded in the same transaction as the change they describe,
 * so the timeline never shows a change that did not happen, nor misses one that did.
 */
export type TaskEventType =
  | 'task.created'
  | 'status.changed'
  | 'dispatch.attempt'
  | 'dispatch.retry_scheduled'
  | 'dispatch.late_response'
  | 'callback.accepted'
  | 'callback.duplicate'
  | 'callback.rejected'
  | 'callback.late'
  | 'signal.accepted'
  | 'signal.rejected'
  | 'delivery.attempt'
  | 'delivery.succeeded'
  | 'delivery.stopped'
  | 'delivery.exhausted'
  | 'delivery.redeliver_requested'
  | 'task.cancel_requested'
  | 'callback.progress'
  | 'callback.unauthorized'
  /** A signed callback that cannot be judged yet (fal's request id unknown): answered 503. */
  | 'callback.deferred'
  | 'callback.superseded'
  | 'poll.started'
  | 'poll.attempt'
  | 'poll.result_fetch'
  | 'poll.superseded'
  | 'poll.stopped'
  | 'provider.cancel_attempt'
  /** Events of one kind past its cap (callbacks/capped-events.ts), counted instead of recorded. */
  | 'timeline.suppressed';

export interface NewEvent {
  type: TaskEventType;
  data?: Record<string, unknown>;
}

/** Events as the statements read them (`e->>'type'`, `e->'data'`), inside a jsonb parameter. */
export const eventRows = (events: NewEvent[]) => events.map((e) => ({ type: e.type, data: e.data ?? {} }));

/** Events as one jsonb parameter, so one prepared statement records any number of them. */
export const eventsParam = (events: NewEvent[]) => JSON.stringify(eventRows(events));

const INSERT_EVENTS = `
  insert into task_events (task_id, type, data)
  select $1, e->>'type', e->'data' from jsonb_array_elements($2::jsonb) e`;

/** Appends timeline events, in whatever transaction the statement runs in. */
export function insertEvents(taskId: string, events: NewEvent[]): Statement {
  return { text: INSERT_EVENTS, params: [taskId, eventsParam(events)] };
}

/*
 * The count must see every event committed before it, so this statement runs after the task's
 * row lock was taken by an earlier statement of the same transaction (READ COMMITTED gives each
 * statement a fresh snapshot; a lock taken inside this statement would leave the count on the
 * snapshot from before the wait). Under that lock one summary per kind exists at most.
 * The count walks the task's events by the (task_id, id) index and stops at the cap: cheap for
 * the bounded timelines of callback tasks; a task polled for days has more events to walk, and
 * pays for it only when a token holder posts to it (no index on type: every event insert on the
 * hot path would pay for that one).
 */
const RECORD_CAPPED = `
  with prior as (
    select count(*)::int as n from (select 1 from task_events where task_id = $1 and type = $2 limit $4::int) s
  ), recorded as (
    insert into task_events (task_id, type, data)
    select $1, $2, $3::jsonb from prior where prior.n < $4::int
    returning id
  ), summary as (
    select id from task_events where task_id = $1 and type = 'timeline.suppressed' and data->>'of' = $2
  ), bumped as (
    update task_events e set data = e.data || jsonb_build_object('count', (e.data->>'count')::int + 1, 'lastAt', now())
    from prior, summary
    where prior.n >= $4::int and e.id = summary.id
    returning e.id
  ), started as (
    insert into task_events (task_id, type, data)
    select $1, 'timeline.suppressed', jsonb_build_object('of', $2::text, 'cap', $4::int, 'count', 1, 'lastAt', now())
    from prior where prior.n >= $4::int and not exists (select 1 from summary)
  )
  select (select count(*) from recorded)::int as recorded`;

/**
 * Records `event` on the task's timeline if fewer than `cap` events of its type are there, else
 * counts it in the type's `timeline.suppressed` event. Run it after the task's row lock (see above).
 */
export function recordCappedEvent(taskId: string, event: NewEvent, cap: number): Statement {
  return { text: RECORD_CAPPED, params: [taskId, event.type, JSON.stringify(event.data ?? {}), cap] };
}
