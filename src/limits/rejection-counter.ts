import type postgres from 'postgres';
import { countHit, deleteStaleRateLimits } from '../db/sql/rate-limits.ts';

export interface SharedHit {
  /** Hits of this key in the current window across every replica, this one included. */
  hits: number;
  /** Seconds until the window ends (at least 1). */
  resetInSeconds: number;
}

/** Counters in PostgreSQL, shared by every replica (DESIGN §5). */
export interface SharedCounter {
  hit(key: string): Promise<SharedHit>;
}

/**
 * A fixed-window counter in the `rate_limits` table: one upsert per hit, which both counts and
 * reads (db/sql/rate-limits.ts, windows cut from the database's clock). Only rare events
 * (rejected callbacks) come here: a round trip each.
 */
export function createSharedCounter(sql: postgres.Sql, windowSeconds: number): SharedCounter {
  return {
    hit: (key) => countHit(sql, key, windowSeconds),
  };
}

/** Deletes counters whose window ended long ago (keys that went quiet); run by the daily purge. */
export async function purgeRateLimits(sql: postgres.Sql, olderThanSeconds = 86_400): Promise<number> {
  return deleteStaleRateLimits(sql, olderThanSeconds);
}
