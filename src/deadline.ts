/**
 * A caller's deadline, handed from the HTTP layer to the verbs that write (http/deadline.ts sets
 * it for every /v1 request). Work still queued when `signal` aborts is dropped, and a statement
 * that only reaches PostgreSQL after `writeBy` writes nothing (migrations/0011_create_deadline.sql):
 * the caller has been answered 503 by then and will retry.
 */
export interface Deadline {
  signal: AbortSignal;
  /** Epoch ms. */
  writeBy: number;
}
