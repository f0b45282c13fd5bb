/**
 * Slots shared fairly between keys (API keys, projects): at most `max` items run at once, at most
 * `maxPerKey` of them for one key, and when a slot frees it goes to the next key in round-robin
 * order, not to whoever queued first. Why: with one FIFO, a key that queues a thousand items
 * makes every other key wait behind all of them; here another key waits for one slot to free,
 * whatever the first key has queued, and a key can never hold every slot.
 *
 * Within one key the order is arrival order. The scheduler bounds nothing that waits: callers
 * check `waitingOf` / `waiting` before they `offer` and refuse past their own limits.
 */
export interface FairScheduler<T> {
  /** Queues `item` under `key`; it starts at once (synchronously, through `start`) if a slot is free for that key. */
  offer(key: string, item: T): void;
  /** An item of `key` that `start` was given has finished: its slot goes to the next key in turn. */
  done(key: string): void;
  /** Whether an item offered now for `key` would start at once. */
  canStart(key: string): boolean;
  /** Items of `key` waiting for a slot. */
  waitingOf(key: string): number;
  /** Items running for `key`. */
  runningOf(key: string): number;
  readonly waiting: number;
  readonly running: number;
}

export interface FairSchedulerOptions<T> {
  max: number;
  maxPerKey: number;
  /** Starts an item; the caller calls `done(key)` when it has finished (it may do so at once). */
  start: (key: string, item: T) => void;
}

export function createFairScheduler<T>({ max, maxPerKey, start }: FairSchedulerOptions<T>): FairScheduler<T> {
  // Keys with waiting items, in turn order: a key served moves to the back (Map keeps insertion order).
  const queues = new Map<string, T[]>();
  const runningByKey = new Map<string, number>();
  let running = 0;
  let waiting = 0;
  let pumping = false;

  const runningOf = (key: string) => runningByKey.get(key) ?? 0;

  /** The first key in turn that may run one more item, with its item; the key goes to the back. */
  const takeNext = (): [string, T] | undefined => {
    for (const [key, queue] of queues) {
      if (runningOf(key) >= maxPerKey) continue;
      const item = queue.shift() as T;
      queues.delete(key);
      if (queue.length > 0) queues.set(key, queue);
      waiting--;
      return [key, item];
    }
    return undefined;
  };

  const pump = () => {
    // `start` may call `done` at once (an item with nothing to do): the loop below goes on, rather
    // than recursing once per item of a long queue.
    if (pumping) return;
    pumping = true;
    try {
      while (running < max) {
        const next = takeNext();
        if (!next) break;
        running++;
        runningByKey.set(next[0], runningOf(next[0]) + 1);
        start(next[0], next[1]);
      }
    } finally {
      pumping = false;
    }
  };

  return {
    offer(key, item) {
      const queue = queues.get(key);
      if (queue) queue.push(item);
      else queues.set(key, [item]);
      waiting++;
      pump();
    },
    done(key) {
      running--;
      const left = runningOf(key) - 1;
      if (left > 0) runningByKey.set(key, left);
      else runningByKey.delete(key);
      pump();
    },
    canStart: (key) => running < max && runningOf(key) < maxPerKey && !queues.has(key),
    waitingOf: (key) => queues.get(key)?.length ?? 0,
    runningOf,
    get waiting() {
      return waiting;
    },
    get running() {
      return running;
    },
  };
}
