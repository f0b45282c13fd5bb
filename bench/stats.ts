/**
 * Pure arithmetic of the benchmark: percentiles by sorting and the joins between
 * what the load generator, the fake provider and the receiver each recorded.
 * Every time here is `performance.timeOrigin + performance.now()` taken in the
 * process that saw the event, so times from different processes compare.
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

/** One create request as the load generator saw it. */
export interface CreateSample {
  n: number;
  startedAt: number;
  finishedAt: number;
  status: number;
  taskId: string | null;
  error?: string;
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

/** Figures of one create phase (relay or floor). */
export function summarizeCreates(samples: readonly CreateSample[], phaseStart: number, phaseEnd: number) {
  const ok = samples.filter((s) => s.status === 201);
  const latencies = ok.map((s) => s.finishedAt - s.startedAt);
  const seconds = (phaseEnd - phaseStart) / 1000;
  return {
    rps: round(samples.length / seconds, 1),
    okRps: round(ok.length / seconds, 1),
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
    errors: samples.length - ok.length,
    seconds: round(seconds, 3),
  };
}

/** Joins the create samples with the fakes' records into the lifecycle figures. */
export function summarizeLifecycle(samples: readonly CreateSample[], ev: LifecycleEvents) {
  const created = samples.filter((s) => s.status === 201);
  let firstSent = Infinity;
  for (const s of samples) firstSent = Math.min(firstSent, s.startedAt);
  const dispatchLag: number[] = [];
  const callbackToNotify: number[] = [];
  let lastDelivery = -Infinity;
  let completed = 0;
  let notCompleted = 0;
  let lost = 0;
  let idMismatches = 0;
  for (const s of created) {
    const submit = ev.submitAt.get(s.n);
    if (submit !== undefined) dispatchLag.push(submit - s.finishedAt);
    const delivery = ev.deliveredAt.get(s.n);
    if (delivery === undefined) {
      lost++;
      continue;
    }
    if (delivery.taskId !== s.taskId) idMismatches++;
    if (delivery.event === 'task.completed') completed++;
    else notCompleted++;
    lastDelivery = Math.max(lastDelivery, delivery.at);
    const sent = ev.callbackSentAt.get(s.n);
    if (sent !== undefined) callbackToNotify.push(delivery.at - sent);
  }
  const delivered = completed + notCompleted;
  const span = (lastDelivery - firstSent) / 1000;
  return {
    // Only lifecycles that ended in task.completed count as throughput.
    lifecycleTps: delivered > 0 ? round(completed / span, 1) : 0,
    delivered,
    notCompleted,
    lost,
    idMismatches,
    dispatched: dispatchLag.length,
    dispatchLagP50Ms: round(percentile(dispatchLag, 50)),
    dispatchLagP99Ms: round(percentile(dispatchLag, 99)),
    callbackToNotifyP50Ms: round(percentile(callbackToNotify, 50)),
    callbackToNotifyP99Ms: round(percentile(callbackToNotify, 99)),
  };
}
