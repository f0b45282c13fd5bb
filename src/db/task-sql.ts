import type { StoredError, StoredResult, TaskStatus, tasks } from '../../drizzle/schema.ts';
import type { NewEvent } from '../tasks/events.ts';
import type { Statement } from './pipeline.ts';

/*
 * The statements on a task's hot path (create, dispatch, callback, delivery), written once as
 * constant SQL so PostgreSQL prepares each a single time per connection and no query is built
 * per call: profiles of the benchmark showed query building as a sixth of the relay's CPU.
 * Everything else goes through drizzle's builder. Parameters are driver values (drizzle sets
 * postgres.js to pass json and timestamps through as text), hence JSON.stringify and ISO dates.
 */

const TERMINAL = `('completed', 'failed', 'timeout', 'cancelled')`;

/** Events as one jsonb parameter, so one prepared statement records any number of them. */
const eventsParam = (events: NewEvent[]) => JSON.stringify(events.map((e) => ({ type: e.type, data: e.data ?? {} })));

const INSERT_EVENTS = `
  insert into task_events (task_id, type, data)
  select $1, e->>'type', e->'data' from jsonb_array_elements($2::jsonb) e`;

/** Appends timeline events, in whatever transaction the statement runs in. */
export function insertEvents(taskId: string, events: NewEvent[]): Statement {
  return { text: INSERT_EVENTS, params: [taskId, eventsParam(events)] };
}

const INSERT_TASK = `
  with task as (
    insert into tasks (id, project_id, status, target_url, method, headers_view, request_sealed, wait_for_signal,
      max_wait_time, timeout, max_retries, retry_backoff, delay_until, priority, on_complete_url, metadata,
      callback_hash, idempotency_key, idempotency_fingerprint, provider, poll_config, callback_rules)
    -- project_id comes from the caller's key, read here: a key revoked a moment ago leaves it
    -- null, the NOT NULL constraint fails the whole transaction, and the caller answers 401.
    values ($1, (select project_id from api_keys where key_hash = $2 and revoked_at is null), $3, $4, $5, $6::jsonb, $7,
      $8, $9, $10, $11, $12, $13::timestamptz, $14, $15, $16::jsonb, $17, $18, $19, $21, $22::jsonb, $23::jsonb)
    returning *
  ), created as (
    insert into task_events (task_id, type, data)
    select task.id, e->>'type', e->'data' from task, jsonb_array_elements($20::jsonb) e
  )
  select * from task`;

/**
 * Inserts a task, for the project of the active API key with hash `keyHash`, with its first
 * timeline events; returns the row. Fails with a not-null violation if the key is not active.
 */
export function insertTask(keyHash: string, values: Omit<typeof tasks.$inferInsert, 'projectId'>, events: NewEvent[]): Statement {
  return {
    text: INSERT_TASK,
    params: [
      values.id,
      keyHash,
      values.status,
      values.targetUrl,
      values.method,
      JSON.stringify(values.headersView),
      values.requestSealed,
      values.waitForSignal,
      values.maxWaitTime,
      values.timeout,
      values.maxRetries,
      values.retryBackoff,
      values.delayUntil ? values.delayUntil.toISOString() : null,
      values.priority,
      values.onCompleteUrl ?? null,
      JSON.stringify(values.metadata),
      values.callbackHash ?? null,
      values.idempotencyKey ?? null,
      values.idempotencyFingerprint ?? null,
      eventsParam(events),
      values.provider ?? null,
      values.pollConfig ? JSON.stringify(values.pollConfig) : null,
      values.callbackRules ? JSON.stringify(values.callbackRules) : null,
    ],
  };
}

const TRANSITION = `
  with changed as (
    update tasks set
      status = $3,
      result = case when $4::boolean then $5::jsonb else result end,
      error = case when $6::boolean then $7::jsonb else error end,
      retry_count = coalesce($8::integer, retry_count),
      callback_body_hash = coalesce($9::text, callback_body_hash),
      completed_at = case when $3 in ${TERMINAL} then now() else completed_at end,
      delivery_status = case when $3 in ${TERMINAL} then (case when on_complete_url is not null then 'pending' end) else delivery_status end,
      delivery_attempts = case when $3 in ${TERMINAL} then 0 else delivery_attempts end,
      updated_at = now()
    where id = $1 and status = any($2::text[]) and ($10::integer is null or retry_count = $10)
    returning *
  ), recorded as (
    insert into task_events (task_id, type, data)
    select changed.id, e->>'type', e->'data' from changed, jsonb_array_elements($11::jsonb) e
  ), missed as (
    insert into task_events (task_id, type, data)
    select $1, e->>'type', e->'data' from jsonb_array_elements($12::jsonb) e
    where not exists (select 1 from changed)
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
  const events = [...(t.events ?? [])];
  const from = t.from.length === 1 ? t.from[0] : undefined;
  if (from !== t.to) events.push({ type: 'status.changed', data: { ...(from ? { from } : {}), to: t.to } });
  return {
    text: TRANSITION,
    params: [
      t.taskId,
      t.from,
      t.to,
      t.result !== undefined,
      t.result === undefined || t.result === null ? null : JSON.stringify(t.result),
      t.error !== undefined,
      t.error === undefined || t.error === null ? null : JSON.stringify(t.error),
      t.setRetryCount ?? null,
      t.callbackBodyHash ?? null,
      t.retryCount ?? null,
      eventsParam(events),
      eventsParam(t.eventsIfMissed ?? []),
    ],
  };
}

const LOCK_BY_ID = `select * from tasks where id = $1 for update`;
const LOCK_BY_CALLBACK = `select * from tasks where callback_hash = $1 for update`;

const LOCK_BY_IDEMPOTENCY_KEY = `select * from tasks where project_id = $1 and idempotency_key = $2 for update`;

export const lockById = (taskId: string): Statement => ({ text: LOCK_BY_ID, params: [taskId] });
export const lockByIdempotencyKey = (projectId: string, key: string): Statement => ({ text: LOCK_BY_IDEMPOTENCY_KEY, params: [projectId, key] });
export const lockByCallbackHash = (hash: string): Statement => ({ text: LOCK_BY_CALLBACK, params: [hash] });

const CLAIM = `
  with current as (
    select id, status from tasks
    where id = $1 and status in ('delayed', 'pending', 'processing')
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

/** Moves a task to `processing` for a dispatch attempt, recording the change; no row if not dispatchable. */
export const claimForDispatch = (taskId: string): Statement => ({ text: CLAIM, params: [taskId] });

const RECORD_DELIVERY = `
  with recorded as (
    update tasks set delivery_status = $2, delivery_attempts = $3, delivery_next_at = $4::timestamptz, updated_at = now()
    where id = $1 and delivery_status = 'pending' and delivery_generation = $5 and delivery_attempts = $3 - 1
    returning id
  ), events as (
    insert into task_events (task_id, type, data)
    select recorded.id, e->>'type', e->'data' from recorded, jsonb_array_elements($6::jsonb) e
  )
  select id from recorded`;

/** Records one onComplete attempt if it is still the expected one (generation and attempt number). */
export function recordDelivery(args: {
  taskId: string;
  status: 'pending' | 'delivered' | 'failed';
  attempt: number;
  nextAt: Date | null;
  generation: number;
  events: NewEvent[];
}): Statement {
  return {
    text: RECORD_DELIVERY,
    params: [args.taskId, args.status, args.attempt, args.nextAt?.toISOString() ?? null, args.generation, eventsParam(args.events)],
  };
}

const CONSUME_CALLBACK = `
  with found as (
    select * from tasks where callback_hash = $1 for update
  ), accepted as (
    update tasks set
      status = 'completed',
      result = jsonb_build_object('statusCode', 200, 'headers', $3::jsonb, 'body', $4::text,
        'duration', greatest(0, floor(extract(epoch from clock_timestamp() - coalesce(found.dispatched_at, found.created_at)) * 1000))::bigint) || $5::jsonb,
      error = null,
      callback_body_hash = $2,
      callback_ref = $8,
      completed_at = now(),
      delivery_status = case when found.on_complete_url is not null then 'pending' end,
      delivery_attempts = 0,
      updated_at = now()
    from found
    where tasks.id = found.id and found.callback_body_hash is null and found.callback_rules is null
      and found.status in ('pending', 'processing', 'waiting', 'polling')
    returning tasks.*
  ), outcome as (
    select found.id, found.status as prior_status,
      case
        when exists (select 1 from accepted) then 'accepted'
        -- A task with callback rules (preset, classification, signature) is decided in code: no writes here.
        when found.callback_rules is not null then 'classify'
        when found.callback_body_hash = $2 then 'duplicate'
        when found.status in ('timeout', 'cancelled') then 'late'
        else 'conflict'
      end as outcome
    from found
  ), events as (
    insert into task_events (task_id, type, data)
    select o.id, e.type, e.data from outcome o cross join lateral (
      select 'callback.accepted' as type, jsonb_build_object('from', o.prior_status, 'size', $6::int) as data where o.outcome = 'accepted'
      union all select 'status.changed', jsonb_build_object('from', o.prior_status, 'to', 'completed') where o.outcome = 'accepted'
      union all select 'callback.duplicate', jsonb_build_object('size', $6::int) where o.outcome = 'duplicate'
      union all select 'callback.late', jsonb_build_object('status', o.prior_status, 'size', $6::int,
          'body', left($4::text, $7::int), 'truncated', length($4::text) > $7::int) || $5::jsonb where o.outcome = 'late'
      union all select 'callback.rejected', jsonb_build_object('status', o.prior_status, 'size', $6::int) where o.outcome = 'conflict'
    ) e
  ), result as (
    select * from accepted union all select * from found where not exists (select 1 from accepted)
  )
  select o.outcome, r.* from outcome o, result r`;

/**
 * A provider's callback, decided and written in one statement under the row lock: accept it
 * (complete the task with the body as its result, consume the token), or record it as a
 * duplicate, a late arrival or a conflict. Returns `outcome` plus the task row as it now is;
 * no row for an unknown token. A task with callback rules comes back as `classify`, unchanged.
 */
export function consumeCallback(args: {
  tokenHash: string;
  bodyHash: string;
  contentType?: string;
  body: string;
  bodyEncoding?: 'base64';
  size: number;
  lateLimit: number;
  /** Random id of this request, stored if it is accepted. */
  ref: string;
}): Statement {
  return {
    text: CONSUME_CALLBACK,
    params: [
      args.tokenHash,
      args.bodyHash,
      JSON.stringify(args.contentType ? { 'content-type': args.contentType } : {}),
      args.body,
      JSON.stringify(args.bodyEncoding ? { bodyEncoding: args.bodyEncoding } : {}),
      args.size,
      args.lateLimit,
      args.ref,
    ],
  };
}
