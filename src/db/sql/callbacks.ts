import type { JobKeep } from '../../jobs/job-sql.ts';
import type { Statement } from '../pipeline.ts';
import { refuseRepeats } from './json-input.ts';

/* A provider's callback consumed on tasks (and its acceptance on task_events), in one statement. */

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
