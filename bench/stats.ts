/**
 * Pure arithmetic of the benchmark: percentiles by sorting and the joins between
 * what the relay stored, the fake provider and the receiver each recorded.
 * Every time here is `performance.timeOrigin + performance.now()` taken in the
 * process that saw the event (or a row's timestamp, PostgreSQL's clock on the same
 * machine), so times from different processes compare.
 */

/** Nearest-rank percentile (p in 0..100) of unsorted samples; null when there are none. */
export function percentile(samples: readonly number[], p: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Rounds to `digits` decimals, keeping null (no samples) as null. */
export function round(value: number | null, digits = 2): number | null {
  if (value === null || !Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A task as the relay stored it: its bench number (metadata.n), its id and its created_at. */
export interface StoredTask {
  n: number;
  id: string;
  /** the row's created_at (the start of the transaction that inserted it), in ms since the epoch */
  createdAt: number;
}

/** Per-task events recorded by the fakes child, keyed by the task's `n`. */
export interface LifecycleEvents {
  /** first submit arrival at the provider */
  submitAt: Map<number, number>;
  /** time the provider sent the callback that the relay answered 2xx */
  callbackSentAt: Map<number, number>;
  /** first verified webhook arrival at the receiver, with the task id it named */
  deliveredAt: Map<number, { at: number; taskId: string; event: string }>;
}

/**
 * The lifecycle figures of a phase of sustained load. Rates and latencies are taken inside the
 * measured window [from, to] only — what the relay did while the creates kept coming — so the
 * tasks of the warm-up that complete in it count, and the drain after it does not:
 * - lifecycleTps: webhooks of `task.completed` that arrived in the window, per second;
 * - callback→webhook: of the webhooks that arrived in the window;
 * - dispatch lag: of the tasks created in the window, created_at → the provider has the submit.
 * `lost` counts every stored task (warm-up included) that no webhook reached after the drain.
 */
export function summarizeLifecycle(tasks: readonly StoredTask[], ev: LifecycleEvents, window: { from: number; to: number }) {
  const inWindow = (t: number) => t >= window.from && t <= window.to;
  const dispatchLag: number[] = [];
  const callbackToNotify: number[] = [];
  let completedInWindow = 0;
  let createdInWindow = 0;
  let delivered = 0;
  let notCompleted = 0;
  let lost = 0;
  let idMismatches = 0;
  for (const task of tasks) {
    const submit = ev.submitAt.get(task.n);
    if (inWindow(task.createdAt)) {
      createdInWindow++;
      if (submit !== undefined) dispatchLag.push(submit - task.createdAt);
    }
    const delivery = ev.deliveredAt.get(task.n);
    if (delivery === undefined) {
      lost++;
      continue;
    }
    delivered++;
    if (delivery.taskId !== task.id) idMismatches++;
    if (delivery.event !== 'task.completed') notCompleted++;
    if (!inWindow(delivery.at)) continue;
    if (delivery.event === 'task.completed') completedInWindow++;
    const sent = ev.callbackSentAt.get(task.n);
    if (sent !== undefined) callbackToNotify.push(delivery.at - sent);
  }
  const seconds = (window.to - window.from) / 1000;
  return {
    lifecycleTps: round(completedInWindow / seconds, 1),
    createdInWindow,
    completedInWindow,
    stored: tasks.length,
    dispatched: tasks.filter((t) => ev.submitAt.has(t.n)).length,
    delivered,
    notCompleted,
    lost,
    idMismatches,
    dispatchLagP50Ms: round(percentile(dispatchLag, 50)),
    dispatchLagP99Ms: round(percentile(dispatchLag, 99)),
    callbackToNotifyP50Ms: round(percentile(callbackToNotify, 50)),
    callbackToNotifyP99Ms: round(percentile(callbackToNotify, 99)),
  };
}
