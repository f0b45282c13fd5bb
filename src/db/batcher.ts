/**
 * Group commit for a hot write: callers submit one item each and get their own result, while
 * items that arrive together are written by one statement. Measured on the task INSERT (task,
 * timeline event and pg-boss job): PostgreSQL spent ~550 µs of CPU per task written one per
 * statement and ~115 µs per task written 16 per statement — the per-statement work (executor
 * start, WAL record and flush at commit, the round trip) dwarfs the per-row work.
 *
 * No timer: a batch leaves as soon as fewer than `maxInFlight` batches are running (the items of
 * one event-loop turn travel together); while they run, new items queue up and leave together
 * next. An idle relay therefore writes each item at once, and a busy one writes bigger batches.
 */

export interface BatcherOptions<In, Out> {
  /** Writes a batch (2 or more items); returns one result per item, in order. */
  many: (items: In[]) => Promise<Out[]>;
  /**
   * Writes one item. Used for a batch of one, and item by item when `many` fails, so an item
   * that cannot be written (say, its API key was revoked a moment ago) fails alone.
   * Default: `many` with that one item.
   */
  one?: (item: In) => Promise<Out>;
  /** Batches written at the same time (each holds one connection); default 4. */
  maxInFlight?: number;
  /** Largest batch; default 64. */
  maxBatch?: number;
}

interface Waiting<In, Out> {
  item: In;
  resolve: (out: Out) => void;
  reject: (error: unknown) => void;
  /** The caller's deadline: an item whose signal aborted before its batch left is never written. */
  signal?: AbortSignal;
}

export function createBatcher<In, Out>(options: BatcherOptions<In, Out>): (item: In, signal?: AbortSignal) => Promise<Out> {
  const { many, maxInFlight = 4, maxBatch = 64 } = options;
  const one = options.one ?? (async (item: In) => (await many([item]))[0]);
  let queue: Waiting<In, Out>[] = [];
  let inFlight = 0;
  let scheduled = false;

  const settleEach = (batch: Waiting<In, Out>[]) =>
    Promise.all(batch.map((w) => one(w.item).then(w.resolve, w.reject)));

  const write = async (batch: Waiting<In, Out>[]) => {
    if (batch.length === 1) {
      await settleEach(batch);
      return;
    }
    let results: Out[];
    try {
      results = await many(batch.map((w) => w.item));
    } catch {
      // One bad item fails the whole statement; written alone, only it fails.
      await settleEach(batch);
      return;
    }
    batch.forEach((w, i) => w.resolve(results[i]));
  };

  const flush = () => {
    scheduled = false;
    // A caller that gave up (its request answered 503, its client gone) while its item waited
    // here must not have it written later: it would be a task the client never learns of.
    if (queue.some((w) => w.signal?.aborted)) {
      queue = queue.filter((w) => {
        if (!w.signal?.aborted) return true;
        w.reject(w.signal.reason);
        return false;
      });
    }
    while (queue.length > 0 && inFlight < maxInFlight) {
      const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch);
      queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch);
      inFlight++;
      void write(batch).finally(() => {
        inFlight--;
        schedule();
      });
    }
  };

  const schedule = () => {
    if (scheduled || queue.length === 0 || inFlight >= maxInFlight) return;
    scheduled = true;
    // After the I/O callbacks of this turn: the requests parsed together are written together.
    setImmediate(flush);
  };

  return (item, signal) =>
    new Promise<Out>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      queue.push({ item, resolve, reject, signal });
      schedule();
    });
}
