/** One hit's standing in its window. */
export interface WindowHit {
  /** Hits of this key in the current window, this one included. */
  count: number;
  /** Unix ms when the window ends and the count starts again at zero. */
  resetAt: number;
}

export interface WindowCounter {
  hit(key: string, now?: number): WindowHit;
}

/** More distinct keys than this in one window and the window's counts are dropped (a flood of addresses). */
const MAX_KEYS = 100_000;

/**
 * A fixed-window counter in this process's memory, windows aligned to the epoch so that every
 * replica's windows start together. A hit is a Map lookup: cheap enough for the hot paths.
 */
export function createWindowCounter(windowMs: number): WindowCounter {
  let windowStart = 0;
  let counts = new Map<string, number>();
  return {
    hit(key, now = Date.now()) {
      const start = now - (now % windowMs);
      if (start !== windowStart || counts.size >= MAX_KEYS) {
        windowStart = start;
        counts = new Map();
      }
      const count = (counts.get(key) ?? 0) + 1;
      counts.set(key, count);
      return { count, resetAt: start + windowMs };
    },
  };
}
