import type { TaskRow } from '../../drizzle/schema.ts';

/** A provider's callback as the route hands it over. */
export interface IncomingCallback {
  token: string;
  body: Uint8Array;
  contentType?: string;
  /** Lower-case request headers, read (lazily: not on the hot path) only for tasks that require signed callbacks. */
  headers?: () => Record<string, string>;
}

/** Expected branches are data: the route maps each outcome to a status code. */
export type CallbackOutcome =
  | { outcome: 'accepted'; task: TaskRow }
  | { outcome: 'duplicate'; task: TaskRow }
  | { outcome: 'conflict'; task: TaskRow }
  | { outcome: 'late'; task: TaskRow }
  /** A provider's progress event (classified tasks): recorded, token kept. */
  | { outcome: 'progress'; task: TaskRow }
  /** A terminal callback after a poll or signal finished the task: recorded, answered 200. */
  | { outcome: 'superseded'; task: TaskRow }
  /** The task requires signed callbacks and this one is not (validly) signed, or not for this task. */
  | { outcome: 'unauthorized'; task: TaskRow }
  /** Signed, but not decidable yet (fal's request id is unknown until the submit answers): retry. */
  | { outcome: 'not_ready'; task: TaskRow }
  | { outcome: 'unknown' };
