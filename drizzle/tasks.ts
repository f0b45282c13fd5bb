import { sql } from 'drizzle-orm';
import { boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { projects } from './projects.ts';

/** Statuses of DESIGN §4; every change is a compare-and-set on this column. */
export type TaskStatus =
  | 'delayed'
  | 'pending'
  | 'processing'
  | 'waiting'
  | 'polling'
  | 'completed'
  | 'failed'
  | 'timeout'
  | 'cancelled';

export interface StoredResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  bodyEncoding?: 'base64';
  truncated?: boolean;
  duration: number;
}

export interface StoredError {
  code: string;
  message: string;
  statusCode?: number;
}

export const tasks = pgTable(
  'tasks',
  {
    id: uuid('id').primaryKey(),
    projectId: text('project_id')
      .notNull()
      .references(() => projects.id),
    status: text('status').$type<TaskStatus>().notNull(),
    targetUrl: text('target_url').notNull(),
    method: text('method').notNull(),
    /** Headers with sensitive values already replaced by "[redacted]": what views show. */
    headersView: jsonb('headers_view').$type<Record<string, string>>().notNull(),
    /** Sealed JSON `{ headers, body, token }`: everything dispatch needs that must not sit in clear. */
    requestSealed: text('request_sealed').notNull(),
    waitForSignal: boolean('wait_for_signal').notNull(),
    maxWaitTime: integer('max_wait_time').notNull(),
    timeout: integer('timeout').notNull(),
    maxRetries: integer('max_retries').notNull(),
    retryBackoff: text('retry_backoff').$type<'exponential' | 'linear'>().notNull(),
    delayUntil: timestamp('delay_until', { withTimezone: true }),
    priority: integer('priority').notNull(),
    onCompleteUrl: text('on_complete_url'),
    provider: text('provider'),
    /** The effective pollConfig (a preset's, overridden by the task's own keys); null when never polled. */
    pollConfig: jsonb('poll_config').$type<Record<string, unknown>>(),
    /** How callbacks are read: `{ classify?, signature? }` (src/providers/callback-rules.ts); secrets are sealed, not here. */
    callbackRules: jsonb('callback_rules').$type<Record<string, unknown>>(),
    /** The provider's job, known once the submit answered: poll, result and cancel URLs, deadline. */
    providerJob: jsonb('provider_job').$type<Record<string, unknown>>(),
    /** Polls made so far: each poll job names the count it expects, so a replayed job starts no second chain. */
    pollCount: integer('poll_count').notNull().default(0),
    metadata: jsonb('metadata').$type<Record<string, string>>().notNull(),
    /** SHA-256 (hex) of the single-use callback token; null when the task never waits. */
    callbackHash: text('callback_hash'),
    /** SHA-256 of the accepted callback body, so a provider's retry of it is answered 200. */
    callbackBodyHash: text('callback_body_hash'),
    /** Random id of the request whose callback was accepted: names the onComplete job it wrote. */
    callbackRef: text('callback_ref'),
    result: jsonb('result').$type<StoredResult>(),
    error: jsonb('error').$type<StoredError>(),
    retryCount: integer('retry_count').notNull().default(0),
    idempotencyKey: text('idempotency_key'),
    idempotencyFingerprint: text('idempotency_fingerprint'),
    /** onComplete delivery: null when there is no onCompleteUrl or the task is not terminal yet. */
    deliveryStatus: text('delivery_status').$type<'pending' | 'delivered' | 'failed'>(),
    deliveryAttempts: integer('delivery_attempts').notNull().default(0),
    /** Bumped by every redelivery so a retry job of an older round cannot act on the new one. */
    deliveryGeneration: integer('delivery_generation').notNull().default(0),
    deliveryNextAt: timestamp('delivery_next_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    dispatchedAt: timestamp('dispatched_at', { withTimezone: true }),
    completedAt: timestamp('completed_at', { withTimezone: true }),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('tasks_callback_hash_idx').on(t.callbackHash),
    uniqueIndex('tasks_idempotency_idx').on(t.projectId, t.idempotencyKey).where(sql`${t.idempotencyKey} is not null`),
    // Keyset listing: newest first within a project (status and metadata filter within it).
    index('tasks_project_id_idx').on(t.projectId, t.id),
    index('tasks_metadata_idx').using('gin', t.metadata),
    // Deliberately no index on status, completed_at or anything else a transition writes: then a
    // transition is a HOT update (no index touched, see the fillfactor in migrations/0005), which
    // measured as the largest single saving in PostgreSQL's work per task. The purge finds old
    // tasks through the primary key instead (ids are UUID v7, time-ordered).

  ],
);

export type TaskRow = typeof tasks.$inferSelect;
