import type { Statement } from '../db/pipeline.ts';
import { recordCappedEvent } from '../db/sql/events.ts';
import type { NewEvent, TaskEventType } from '../db/sql/events.ts';

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

/**
 * Records `event` on the task's timeline if fewer than its cap of that type are there, else counts
 * it in the type's `timeline.suppressed` event. Run it after the task's row lock (`lockTask`).
 */
export function recordCapped(taskId: string, event: NewEvent & { type: CappedEventType }): Statement {
  return recordCappedEvent(taskId, event, CALLBACK_EVENT_CAPS[event.type]);
}
