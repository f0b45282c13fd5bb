import { setTimeout as pause } from 'node:timers/promises';
import type { TestRelay } from './relay.ts';

/** How long between two reads of a timeline: the relay's own long-poll pace (tasks/wait-for-change.ts). */
const PACE_MS = 100;

/** The task's timeline, oldest first. */
export async function timelineOf(relay: TestRelay, id: string): Promise<any[]> {
  return (await relay.api('GET', `/v1/tasks/${id}/events`)).body.events;
}

/**
 * Resolves with the first event of `type` on the task's timeline. Events are written by jobs
 * that nothing outside the relay can await, so the timeline is re-read at a steady pace (not
 * spun) until the event is there; fails after `timeoutMs`.
 */
export async function waitForTimeline(relay: TestRelay, id: string, type: string, timeoutMs = 10_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await timelineOf(relay, id)).find((e) => e.type === type);
    if (found) return found;
    if (Date.now() >= deadline) throw new Error(`no ${type} on the timeline of ${id} after ${timeoutMs} ms`);
    await pause(PACE_MS);
  }
}
