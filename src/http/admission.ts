import type { MiddlewareHandler } from 'hono';
import { problem } from './problem.ts';

/**
 * At most `max` task creations are handled at once by this process; the others wait their turn
 * in arrival order before their body is even read. Why: under a burst of creates the event loop
 * and the database otherwise serve the newcomers first, and the work already under way — the
 * provider callbacks and the onComplete webhooks of earlier tasks — queues behind them.
 * Measured in `npm run bench` (64 clients creating as fast as they can): without a bound the
 * dispatch backlog grew to seconds and callback-to-webhook p99 was ~300 ms; with 12 at once,
 * dispatch lag ~50 ms, callback-to-webhook p99 ~120 ms, and more lifecycles per second, not
 * fewer (creates still batch, see tasks/insert-tasks.ts).
 *
 * A queue longer than `maxWaiting` is shed with 503 and Retry-After: a client retries a refused
 * create, while one that waits unboundedly holds memory and a socket.
 */
export function admitCreates(max: number, maxWaiting = 10_000): MiddlewareHandler {
  let running = 0;
  const waiting: Array<() => void> = [];
  const handOn = () => {
    const nextInLine = waiting.shift();
    if (nextInLine) nextInLine();
    else running--;
  };
  return async (c, next) => {
    if (running >= max) {
      if (waiting.length >= maxWaiting) {
        c.header('retry-after', '1');
        return problem(c, 503, 'overloaded', 'Too many task creations in progress; retry shortly');
      }
      // The slot is handed over by the request that finishes (running stays the same).
      await new Promise<void>((resolve) => waiting.push(resolve));
      // The client gave up while it waited: creating the task now would make one it never learns
      // of (and a retry of it a duplicate). Pass the slot on.
      if (c.req.raw.signal.aborted) {
        handOn();
        return problem(c, 503, 'overloaded', 'The client went away before its turn');
      }
    } else {
      running++;
    }
    try {
      await next();
    } finally {
      handOn();
    }
  };
}
