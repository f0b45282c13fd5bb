import { once, type EventEmitter } from 'node:events';

/**
 * Resolves with the first value `check()` returns that is not undefined, re-checking each time
 * `emitter` emits `event` (the fakes emit on every request they record). Fails after `timeoutMs`.
 */
export async function waitForEvent<T>(
  emitter: EventEmitter,
  event: string,
  check: () => T | undefined,
  timeoutMs = 10_000,
  what = 'event',
): Promise<T> {
  const signal = AbortSignal.timeout(timeoutMs);
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    try {
      await once(emitter, event, { signal });
    } catch {
      const last = check();
      if (last !== undefined) return last;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
  }
}
