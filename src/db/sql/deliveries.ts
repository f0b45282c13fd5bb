import { eq, sql } from 'drizzle-orm';
import { tasks } from '../../../drizzle/schema.ts';
import type { DbOrTx } from '../client.ts';
import { type Statement, statementOf } from '../pipeline.ts';
import { eventRows, type NewEvent } from './events.ts';
import { refuseRepeats } from './json-input.ts';

/* The onComplete delivery columns of tasks: each attempt recorded against its round and number. */

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

/** A new delivery round (redeliver): attempts start over under the next generation; returns the row. */
export function startDeliveryRound(db: DbOrTx, taskId: string, generation: number): Statement {
  return statementOf(
    db
      .update(tasks)
      .set({ deliveryStatus: 'pending', deliveryAttempts: 0, deliveryNextAt: null, deliveryGeneration: generation, updatedAt: sql`now()` })
      .where(eq(tasks.id, taskId))
      .returning(),
  );
}
