import { eq, sql } from 'drizzle-orm';
import { type StoredError, type StoredResult, type TaskStatus, tasks } from '../../../drizzle/schema.ts';
import type { JobKeep } from '../../jobs/job-sql.ts';
import type { DbOrTx } from '../client.ts';
import { type Statement, statementOf } from '../pipeline.ts';
import { eventRows, type NewEvent } from './events.ts';
import { refuseRepeats } from './json-input.ts';

/*
 * The statements on a task's hot path (create, dispatch, callback, delivery), written once as
 * constant SQL so PostgreSQL prepares each a single time per connection and no query is built
 * per call: profiles of the benchmark showed query building as a sixth of the relay's CPU.
 * Everything else goes through drizzle's builder (the other files of db/sql/). Parameters are driver values (drizzle sets
 * postgres.js to pass json and timestamps through as text), hence JSON.stringify and ISO dates.
 */

const TERMINAL = `('completed', 'failed', 'timeout', 'cancelled')`;

const INSERT_TASKS = `
  with input as (
    select * from jsonb_to_recordset($1::jsonb) as t(id uuid, key_hash text, status text, target_url text, method text,
      headers_view jsonb, request_sealed text, wait_for_signal boolean, max_wait_time integer, timeout integer,
      max_retries integer, retry_backoff text, delay_until timestamptz, priority integer, on_complete_url text,
      metadata jsonb, callback_hash text, idempotency_key text, idempotency_fingerprint text, provider text,
      poll_config jsonb, callback_rules jsonb, events jsonb, write_by timestamptz)
    -- A create answered 503 for missing its deadline is retried by its client: if this statement
    -- only runs now, it must write nothing (asyncrelay_before_deadline raises query_canceled).
    where asyncrelay_before_deadline(t.write_by)
  ), task as (
    insert into tasks (id, project_id, status, target_url, method, headers_view, request_sealed, wait_for_signal,
      max_wait_time, timeout, max_retries, retry_backoff, delay_until, priority, on_complete_url, metadata, callback_hash,
      idempotency_key, idempotency_fingerprint, provider, poll_config, callback_rules)
    -- project_id comes from the caller's key, read here: a key revoked a moment ago leaves it
    -- null, the NOT NULL constraint fails the whole statement, and the caller answers 401.
    select i.id, (select project_id from api_keys where key_hash = i.key_hash and revoked_at is null), i.status,
      i.target_url, i.method, i.headers_view, i.request_sealed, i.wait_for_signal, i.max_wait_time, i.timeout,
      i.max_retries, i.retry_backoff, i.delay_until, i.priority, i.on_complete_url, i.metadata, i.callback_hash,
      i.idempotency_key, i.idempotency_fingerprint, i.provider, i.poll_config, i.callback_rules
    from input i
    returning *
  ), created as (
    insert into task_events (task_id, type, data)
    select task.id, e->>'type', e->'data' from task join input i on i.id = task.id, jsonb_array_elements(i.events) e
  )
  select * from task`;

/** A task to insert: its values, the hash of the caller's API key and its first timeline events. */
export interface TaskInsert {
  keyHash: string;
  values: Omit<typeof tasks.$inferInsert, 'projectId'>;
  events: NewEvent[];
  /** Epoch ms: the statement writes nothing (it fails with 57014) if it starts after this. */
  writeBy?: number;
}

/**
 * Inserts tasks (each for the project of its caller's active key, read inside the statement) with
 * their first events, any number in one statement; returns the rows in no particular order. A
 * single inactive key fails the whole statement.
 */
export function insertTasks(batch: TaskInsert[]): Statement {
  const rows = batch.map(({ keyHash, values: v, events, writeBy }) => ({
    id: v.id,
    key_hash: keyHash,
    status: v.status,
    target_url: v.targetUrl,
    method: v.method,
    headers_view: v.headersView,
    request_sealed: v.requestSealed,
    wait_for_signal: v.waitForSignal,
    max_wait_time: v.maxWaitTime,
    timeout: v.timeout,
    max_retries: v.maxRetries,
    retry_backoff: v.retryBackoff,
    delay_until: v.delayUntil ?? null,
    priority: v.priority,
    on_complete_url: v.onCompleteUrl ?? null,
    metadata: v.metadata,
    callback_hash: v.callbackHash ?? null,
    idempotency_key: v.idempotencyKey ?? null,
    idempotency_fingerprint: v.idempotencyFingerprint ?? null,
    provider: v.provider ?? null,
    // Absent keys are SQL NULL; a JSON null would be stored as the jsonb value null.
    poll_config: v.pollConfig ?? undefined,
    callback_rules: v.callbackRules ?? undefined,
    events: eventRows(events),
    write_by: writeBy === undefined ? null : new Date(writeBy).toISOString(),
  }));
  return { text: INSERT_TASKS, params: [JSON.stringify(rows)] };
}

const TRANSITIONS = `
  with input as (
    select * from jsonb_to_recordset($1::jsonb) as t(task_id uuid, from_statuses text[], to_status text,
      set_result boolean, result jsonb, set_error boolean, error jsonb, set_retry_count integer,
      callback_body_hash text, retry_count integer, events jsonb, events_if_missed jsonb)
  ), changed as (
    update tasks set
      status = i.to_status,
      result = case when i.set_result then i.result else tasks.result end,
      error = case when i.set_error then i.error else tasks.error end,
      retry_count = coalesce(i.set_retry_count, tasks.retry_count),
      callback_body_hash = coalesce(i.callback_body_hash, tasks.callback_body_hash),
      completed_at = case when i.to_status in ${TERMINAL} then now() else tasks.completed_at end,
      delivery_status = case when i.to_status in ${TERMINAL} then (case when tasks.on_complete_url is not null then 'pending' end) else tasks.delivery_status end,
      delivery_attempts = case when i.to_status in ${TERMINAL} then 0 else tasks.delivery_attempts end,
      updated_at = now()
    from input i
    where tasks.id = i.task_id and tasks.status = any(i.from_statuses) and (i.retry_count is null or tasks.retry_count = i.retry_count)
    returning tasks.*
  ), recorded as (
    insert into task_events (task_id, type, data)
    select changed.id, e->>'type', e->'data' from changed join input i on i.task_id = changed.id, jsonb_array_elements(i.events) e
  ), missed as (
    insert into task_events (task_id, type, data)
    select i.task_id, e->>'type', e->'data' from input i, jsonb_array_elements(i.events_if_missed) e
    where not exists (select 1 from changed where changed.id = i.task_id)
  )
  select * from changed`;

export interface Transition {
  taskId: string;
  /** Compare-and-set guard: the task must be in one of these statuses… */
  from: TaskStatus[];
  /** …and, when given, have exactly this retry count (the attempt this change answers). */
  retryCount?: number;
  to: TaskStatus;
  /** undefined leaves the column as it is; null clears it. */
  result?: StoredResult | null;
  error?: StoredError | null;
  setRetryCount?: number;
  callbackBodyHash?: string;
  /** Recorded with the change (a `status.changed` is added when the status changes). */
  events?: NewEvent[];
  /** Recorded instead when the guard fails: someone else moved the task first. */
  eventsIfMissed?: NewEvent[];
}

/**
 * A compare-and-set on a task's status with its timeline, in one statement: the row comes back
 * only if the guard held. Terminal statuses also stamp completed_at and arm the onComplete
 * delivery; the caller enqueues the delivery job in the same transaction.
 */
export function transition(t: Transition): Statement {
  return transitions([t]);
}

/**
 * Several compare-and-sets in one statement (each as `transition` describes; rows come back for
 * those whose guard held). A task may appear only once: an UPDATE changes a row once per
 * statement, so a second change of the same task would be lost, not refused.
 */
export function transitions(ts: Transition[]): Statement {
  refuseRepeats(ts.map((t) => t.taskId), 'transitions: a task');
  const rows = ts.map((t) => {
    const events = [...(t.events ?? [])];
    const from = t.from.length === 1 ? t.from[0] : undefined;
    if (from !== t.to) events.push({ type: 'status.changed', data: { ...(from ? { from } : {}), to: t.to } });
    return {
      task_id: t.taskId,
      from_statuses: t.from,
      to_status: t.to,
      // Absent keys are SQL NULL; a JSON null would be stored as the jsonb value null.
      set_result: t.result !== undefined,
      result: t.result ?? undefined,
      set_error: t.error !== undefined,
      error: t.error ?? undefined,
      set_retry_count: t.setRetryCount ?? null,
      callback_body_hash: t.callbackBodyHash ?? null,
      retry_count: t.retryCount ?? null,
      events: eventRows(events),
      events_if_missed: eventRows(t.eventsIfMissed ?? []),
    };
  });
  return { text: TRANSITIONS, params: [JSON.stringify(rows)] };
}

/**
 * Only the jobs of tasks whose compare-and-set held (the `changed` rows of `transitions`): a
 * follow-up job of a change that lost the race to a callback, a cancel or a signal is not written.
 */
export const CHANGED_TASK_JOBS: JobKeep = {
  sql: `(j->'data'->>'taskId')::uuid in (select id from changed)`,
  keeps: (rows) => {
    const ids = new Set(rows.map((row) => row.id));
    return (job) => ids.has((job.data as { taskId?: string }).taskId);
  },
};

const LOCK_BY_ID = `select * from tasks where id = $1 for update`;
const LOCK_BY_CALLBACK = `select * from tasks where callback_hash = $1 for update`;

/*
 * An idempotent create locks the task of its key, if any, and reads whether the caller's API key
 * is still active in the same statement: a replay answers the task's token, so a key revoked a
 * moment ago (whatever a replica's key cache says) must be refused here, not only by the INSERT.
 * Always one row: `key_active`, then the task's columns (all null when there is no task).
 */
const LOCK_BY_IDEMPOTENCY_KEY = `
  select k.key_active, t.* from
    (select exists (select 1 from api_keys where key_hash = $3 and project_id = $1 and revoked_at is null) as key_active) k
    left join lateral (select * from tasks where project_id = $1 and idempotency_key = $2 for update) t on true`;

export const lockById = (taskId: string): Statement => ({ text: LOCK_BY_ID, params: [taskId] });
export const lockByIdempotencyKey = (projectId: string, key: string, keyHash: string): Statement => ({ text: LOCK_BY_IDEMPOTENCY_KEY, params: [projectId, key, keyHash] });
export const lockByCallbackHash = (hash: string): Statement => ({ text: LOCK_BY_CALLBACK, params: [hash] });

const LOCK_TASK = `select 1 from tasks where id = $1 for update`;

/** The row lock alone, for a statement that needs it taken first (db/sql/events.ts `recordCappedEvent`). */
export const lockTask = (taskId: string): Statement => ({ text: LOCK_TASK, params: [taskId] });

const CLAIM = `
  with current as (
    select id, status from tasks
    where id = any($1::uuid[]) and status in ('delayed', 'pending', 'processing')
    for update
  ), claimed as (
    update tasks t
    set status = 'processing', started_at = coalesce(t.started_at, now()), dispatched_at = now(), updated_at = now()
    from current where t.id = current.id
    returning t.*, current.status as previous_status
  ), changed as (
    insert into task_events (task_id, type, data)
    select id, 'status.changed', jsonb_build_object('from', previous_status, 'to', 'processing')
    from claimed where previous_status <> 'processing'
  )
  select * from claimed`;

/**
 * Moves tasks to `processing` for a dispatch attempt, recording each change; returns the rows of
 * those that were dispatchable (the others: cancelled, already answered, gone).
 */
export function claimForDispatch(taskIds: string[]): Statement {
  // An array literal of ids; anything but a UUID (a job not written by us) is refused here.
  const bad = taskIds.find((id) => !UUID.test(id));
  if (bad !== undefined) throw new Error(`claimForDispatch: not a task id: ${JSON.stringify(bad).slice(0, 60)}`);
  return { text: CLAIM, params: [`{${taskIds.join(',')}}`] };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An idempotency key past its window is free again: the old task keeps everything but the key. */
export function releaseIdempotencyKey(db: DbOrTx, taskId: string): Statement {
  return statementOf(db.update(tasks).set({ idempotencyKey: null, updatedAt: sql`now()` }).where(eq(tasks.id, taskId)));
}
