import type postgres from 'postgres';

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
 * reads. Windows are cut from the database's clock (date_bin), so replicas whose clocks drift
 * still share one window. Only rare events (rejected callbacks) come here: a round trip each.
 */
export function createSharedCounter(sql: postgres.Sql, windowSeconds: number): SharedCounter {
  return {
    async hit(key) {
      const [row] = await sql<{ hits: number; reset_in: number }[]>`
        insert into rate_limits as r (key, window_start, hits)
        values (${key}, date_bin(make_interval(secs => ${windowSeconds}), now(), timestamptz '2000-01-01 00:00:00+00'), 1)
        on conflict (key) do update set
          hits = case when r.window_start = excluded.window_start then r.hits + 1 else 1 end,
          window_start = excluded.window_start
        returning hits, greatest(1, ceil(extract(epoch from (window_start + make_interval(secs => ${windowSeconds}) - now()))))::int as reset_in`;
      return { hits: row.hits, resetInSeconds: row.reset_in };
    },
  };
}

/** Deletes counters whose window ended long ago (keys that went quiet); run by the daily purge. */
export async function purgeRateLimits(sql: postgres.Sql, olderThanSeconds = 86_400): Promise<number> {
  const rows = await sql`delete from rate_limits where window_start < now() - make_interval(secs => ${olderThanSeconds}) returning key`;
  return rows.length;
}
