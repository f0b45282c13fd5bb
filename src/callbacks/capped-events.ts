import type { Statement } from '../db/pipeline.ts';
import type { NewEvent, TaskEventType } from '../tasks/events.ts';

/*
 * What a callback token's holder can make the relay write. The token travels through the
 * provider, and every POST to it used to add a timeline event (progress, duplicates, superseded
 * and late results with up to 64 KiB of payload, 401s, rejected signals): 1,100 progress
 * callbacks pushed a task's completion past the first 1,000 events. Each such kind is now
 * recorded up to a cap per task; beyond it one `timeline.suppressed` event per kind counts the
 * rest, and kept payloads are cut to a few KiB.
 */

/** Per task, how many events of each kind the token holder's requests may add one by one. */
export const CALLBACK_EVENT_CAPS = {
  // Generous: Replicate sends `output`/`logs` progress up to twice a second without a filter.
  'callback.progress': 100,
  'callback.duplicate': 10,
  'callback.superseded': 10,
  'callback.late': 10,
  'callback.rejected': 10,
  'callback.unauthorized': 10,
  'callback.deferred': 10,
  'signal.rejected': 10,
} as const satisfies Partial<Record<TaskEventType, number>>;

export type CappedEventType = keyof typeof CALLBACK_EVENT_CAPS;

/** How much of a late or superseded payload the timeline keeps (characters of the stored body). */
export const KEPT_PAYLOAD_CHARS = 4 * 1024;

/** The start of a payload, as a late or superseded event keeps it. */
export function keptPayload(stored: { body: string; bodyEncoding?: 'base64' }) {
  return {
    body: stored.body.slice(0, KEPT_PAYLOAD_CHARS),
    truncated: stored.body.length > KEPT_PAYLOAD_CHARS,
    ...(stored.bodyEncoding && { bodyEncoding: stored.bodyEncoding }),
  };
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
 * Records `event` on the task's timeline if fewer than its cap of that type are there, else counts
 * it in the type's `timeline.suppressed` event. Run it after the task's row lock (see above).
 */
export function recordCapped(taskId: string, event: NewEvent & { type: CappedEventType }): Statement {
  return { text: RECORD_CAPPED, params: [taskId, event.type, JSON.stringify(event.data ?? {}), CALLBACK_EVENT_CAPS[event.type]] };
}

const LOCK_TASK = `select 1 from tasks where id = $1 for update`;

/** The row lock `recordCapped` needs, for callers that hold none yet. */
export const lockTask = (taskId: string): Statement => ({ text: LOCK_TASK, params: [taskId] });
