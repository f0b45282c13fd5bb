import type { StoredError, StoredResult, TaskStatus, tasks } from '../../drizzle/schema.ts';
import type { NewEvent } from '../tasks/events.ts';
import type { JobKeep } from '../jobs/job-sql.ts';
import type { Statement } from './pipeline.ts';

/*
 * The statements on a task's hot path (create, dispatch, callback, delivery), written once as
 * constant SQL so PostgreSQL prepares each a single time per connection and no query is built
 * per call: profiles of the benchmark showed query building as a sixth of the relay's CPU.
 * Everything else goes through drizzle's builder. Parameters are driver values (drizzle sets
 * postgres.js to pass json and timestamps through as text), hence JSON.stringify and ISO dates.
 */

const TERMINAL = `('completed', 'failed', 'timeout', 'cancelled')`;

/** Events as the statements read them (`e->>'type'`, `e->'data'`), inside a jsonb parameter. */
const eventRows = (events: NewEvent[]) => events.map((e) => ({ type: e.type, data: e.data ?? {} }));

/** Events as one jsonb parameter, so one prepared statement records any number of them. */
export const eventsParam = (events: NewEvent[]) => JSON.stringify(eventRows(events));

/**
 * The batched statements change a row once per statement: an UPDATE … FROM with two input rows
 * for the same task applies one of them, unpredictably, so a batch naming a task (or token) twice
 * is refused, and the batcher writes its items one by one.
 */
function refuseRepeats(keys: string[], what: string): void {
  if (new Set(keys).size !== keys.length) throw new Error(`${what} appears twice in one statement`);
}

const INSERT_EVENTS = `
  insert into task_events (task_id, type, data)
  select $1, e->>'type', e->'data' from jsonb_array_elements($2::jsonb) e`;

/** Appends timeline events, in whatever transaction the statement runs in. */
export function insertEvents(taskId: string, events: NewEvent[]): Statement {
  return { text: INSERT_EVENTS, params: [taskId, eventsParam(events)] };
}

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

const RECORD_DELIVERIES = `
  with input as (
    select * from jsonb_to_recordset($1::jsonb) as t(task_id uuid, status text, attempt integer, next_at timestamptz,
      generation integer, events jsonb)
  ), recorded as (
    update tasks set delivery_status = i.status, delivery_attempts = i.attempt, delivery_next_at = i.next_at, updated_at = now()
    from input i
    where tasks.id = i.task_id and tasks.delivery_status = 'pending' and tasks.delivery_generation = i.generation
      and tasks.delivery_attempts = i.attempt - 1
    returning tasks.id
  ), events as (
    insert into task_events (task_id, type, data)
    select recorded.id, e->>'type', e->'data' from recorded join input i on i.task_id = recorded.id, jsonb_array_elements(i.events) e
  )
  select id from recorded`;

export interface DeliveryRecord {
  taskId: string;
  status: 'pending' | 'delivered' | 'failed';
  attempt: number;
  nextAt: Date | null;
  generation: number;
  events: NewEvent[];
}

/** Records one onComplete attempt if it is still the expected one (generation and attempt number). */
export function recordDelivery(args: DeliveryRecord): Statement {
  return recordDeliveries([args]);
}

/** Several attempts' records in one statement; a task may appear once (see `transitions`). */
export function recordDeliveries(records: DeliveryRecord[]): Statement {
  refuseRepeats(records.map((r) => r.taskId), 'recordDeliveries: a task');
  const rows = records.map((r) => ({
    task_id: r.taskId,
    status: r.status,
    attempt: r.attempt,
    next_at: r.nextAt?.toISOString(),
    generation: r.generation,
    events: eventRows(r.events),
  }));
  return { text: RECORD_DELIVERIES, params: [JSON.stringify(rows)] };
}

const CONSUME_CALLBACKS = `
  with input as (
    select * from jsonb_to_recordset($1::jsonb) as t(token_hash text, body_hash text, headers jsonb, body text,
      extra jsonb, size integer, ref text)
  ), found as (
    select tasks.* from tasks join input i on tasks.callback_hash = i.token_hash for update of tasks
  ), accepted as (
    update tasks set
      status = 'completed',
      result = jsonb_build_object('statusCode', 200, 'headers', i.headers, 'body', i.body,
        'duration', greatest(0, floor(extract(epoch from clock_timestamp() - coalesce(found.dispatched_at, found.created_at)) * 1000))::bigint) || i.extra,
      error = null,
      callback_body_hash = i.body_hash,
      callback_ref = i.ref,
      completed_at = now(),
      delivery_status = case when found.on_complete_url is not null then 'pending' end,
      delivery_attempts = 0,
      updated_at = now()
    from found join input i on i.token_hash = found.callback_hash
    where tasks.id = found.id and found.callback_body_hash is null and found.callback_rules is null
      and found.status in ('pending', 'processing', 'waiting', 'polling')
    returning tasks.*
  ), outcome as (
    select found.id, found.status as prior_status, i.size,
      case
        when exists (select 1 from accepted a where a.id = found.id) then 'accepted'
        -- A task with callback rules (preset, classification, signature) is decided in code: no writes here.
        when found.callback_rules is not null then 'classify'
        when found.callback_body_hash = i.body_hash then 'duplicate'
        when found.status in ('timeout', 'cancelled') then 'late'
        else 'conflict'
      end as outcome
    from found join input i on i.token_hash = found.callback_hash
  ), events as (
    -- Only the acceptance is recorded here: duplicates, late and rejected callbacks are recorded by
    -- the caller within their per-task caps (callbacks/capped-events.ts), off the hot path.
    insert into task_events (task_id, type, data)
    select o.id, e.type, e.data from outcome o cross join lateral (
      select 'callback.accepted' as type, jsonb_build_object('from', o.prior_status, 'size', o.size) as data
      union all select 'status.changed', jsonb_build_object('from', o.prior_status, 'to', 'completed')
    ) e where o.outcome = 'accepted'
  ), result as (
    select * from accepted union all select * from found f where not exists (select 1 from accepted a where a.id = f.id)
  )
  select o.outcome, r.* from outcome o join result r on r.id = o.id`;

/** One callback as the statement takes it. */
export interface CallbackConsume {
  tokenHash: string;
  bodyHash: string;
  contentType?: string;
  body: string;
  bodyEncoding?: 'base64';
  size: number;
  /** Random id of this request, stored if it is accepted. */
  ref: string;
}

/**
 * Providers' callbacks, decided and written in one statement under the row locks: accept each
 * (complete the task with the body as its result, consume the token), or tell it a duplicate, a
 * late arrival or a conflict (for the caller to record). Returns, per known token, `outcome` plus the task row
 * as it now is; no row for an unknown token. A task with callback rules comes back as
 * `classify`, unchanged. A token may appear once per statement (see `transitions`).
 */
export function consumeCallbacks(callbacks: CallbackConsume[]): Statement {
  refuseRepeats(callbacks.map((c) => c.tokenHash), 'consumeCallbacks: a token');
  const rows = callbacks.map((c) => ({
    token_hash: c.tokenHash,
    body_hash: c.bodyHash,
    headers: c.contentType ? { 'content-type': c.contentType } : {},
    body: c.body,
    extra: c.bodyEncoding ? { bodyEncoding: c.bodyEncoding } : {},
    size: c.size,
    ref: c.ref,
  }));
  return { text: CONSUME_CALLBACKS, params: [JSON.stringify(rows)] };
}

/** Only the jobs of accepted callbacks are kept: their `ref` is stored by the statement that accepted them. */
export const ACCEPTED_CALLBACK_JOBS: JobKeep = {
  sql: `j->'data'->>'ref' in (select callback_ref from accepted)`,
  keeps: (rows) => {
    const refs = new Set(rows.filter((row) => row.outcome === 'accepted').map((row) => row.callback_ref));
    return (job) => refs.has((job.data as { ref?: string }).ref);
  },
};

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
