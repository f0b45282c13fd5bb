import type { Context, MiddlewareHandler } from 'hono';
import { createFairScheduler } from '../limits/fair-scheduler.ts';
import type { AuthEnv } from './auth.ts';
import { problem } from './problem.ts';

/** How task creations are admitted (RELAY_CREATE_* settings; see config.ts). */
export interface AdmissionOptions {
  /** Creations handled at once by this process (RELAY_CREATE_CONCURRENCY). */
  max: number;
  /** Of which at most this many for one API key (RELAY_CREATE_CONCURRENCY_PER_KEY). */
  maxPerKey: number;
  /** Creations of one API key waiting for a slot (RELAY_CREATE_QUEUE_PER_KEY); past it 429. */
  maxWaitingPerKey: number;
  /** Creations waiting in all; past it 503. */
  maxWaiting?: number;
}

/**
 * Request bodies held by waiting creations, characters: per key, then in all. A waiting creation
 * holds its body (up to 2 MiB), so counts alone would not bound the memory; one key can take at
 * most an eighth of the whole.
 */
const MAX_WAITING_CHARS_PER_KEY = 32 * 1024 * 1024;
const MAX_WAITING_CHARS = 256 * 1024 * 1024;

interface Waiter {
  size: number;
  admit: () => void;
}

/**
 * At most `max` task creations are handled at once by this process, at most `maxPerKey` for one
 * API key; the others wait their turn, in arrival order within a key and round-robin between
 * keys (limits/fair-scheduler.ts). Why a bound at all: under a burst of creates the event loop and
 * the database otherwise serve the newcomers first, and the work already under way — the provider
 * callbacks and the onComplete webhooks of earlier tasks — queues behind them. Measured in
 * `npm run bench` (64 clients creating as fast as they can): without a bound the dispatch backlog
 * grew to seconds and callback-to-webhook p99 was ~300 ms; with 12 at once, dispatch lag ~50 ms,
 * callback-to-webhook p99 ~120 ms, and more lifecycles per second, not fewer.
 *
 * A slot is taken only once the whole body is in. A slot handed out before the body is read is
 * held for as long as the client takes to send it: twelve clients sending a 260-byte body at one
 * byte a second stopped every tenant's creates (issue 15). Reading first costs a slow client only
 * its own connection, which the server's request deadline (RELAY_REQUEST_TIMEOUT_SECONDS) cuts.
 *
 * A key past its own queue bound is answered 429, the process past its bound 503, both with
 * Retry-After: a client retries a refused create, while one that waits unboundedly holds memory
 * and a socket.
 */
export function admitCreates({ max, maxPerKey, maxWaitingPerKey, maxWaiting = 10_000 }: AdmissionOptions): MiddlewareHandler<AuthEnv> {
  const slots = createFairScheduler<Waiter>({ max, maxPerKey, start: (key, waiter) => release(key, waiter) });
  const waitingChars = new Map<string, number>();
  let allWaitingChars = 0;
  const release = (key: string, waiter: Waiter) => {
    const left = (waitingChars.get(key) ?? 0) - waiter.size;
    if (left > 0) waitingChars.set(key, left);
    else waitingChars.delete(key);
    allWaitingChars -= waiter.size;
    waiter.admit();
  };
  const refuse = (c: Context, status: 429 | 503, detail: string) => {
    c.header('retry-after', '1');
    return problem(c, status, status === 429 ? 'rate_limited' : 'overloaded', detail);
  };

  return async (c, next) => {
    let size: number;
    try {
      // hono keeps the text: the route's validator parses it without reading the socket again.
      size = (await c.req.text()).length;
    } catch {
      // The client went away mid-body, or the server's request deadline cut it.
      return problem(c, 400, 'invalid_request', 'The request body could not be read');
    }
    const key = c.get('keyHash');
    const queued = !slots.canStart(key);
    if (queued) {
      const keyChars = (waitingChars.get(key) ?? 0) + size;
      if (slots.waitingOf(key) >= maxWaitingPerKey || keyChars > MAX_WAITING_CHARS_PER_KEY) {
        return refuse(c, 429, 'Too many task creations of this API key waiting; retry shortly');
      }
      if (slots.waiting >= maxWaiting || allWaitingChars + size > MAX_WAITING_CHARS) {
        return refuse(c, 503, 'Too many task creations in progress; retry shortly');
      }
      waitingChars.set(key, keyChars);
      allWaitingChars += size;
    }
    await new Promise<void>((admit) => slots.offer(key, { size: queued ? size : 0, admit }));
    // The client gave up while it waited, or was answered 503 at its deadline (http/deadline.ts):
    // creating the task now would make one it never learns of (and a retry of it a duplicate).
    // Pass the slot on.
    if (c.get('deadline')?.signal.aborted || c.req.raw.signal.aborted) {
      slots.done(key);
      return problem(c, 503, 'overloaded', 'The client went away before its turn');
    }
    try {
      await next();
    } finally {
      slots.done(key);
    }
  };
}
