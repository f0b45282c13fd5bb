import type postgres from 'postgres';

/*
 * The `rate_limits` table: fixed-window counters shared by every replica (DESIGN §5), one row per
 * key, counted by one upsert per hit and emptied of keys that went quiet by the daily purge.
 */

/**
 * Counts one hit of `key` and reads the count back, in one upsert: the row is reset in place when
 * a new window starts. Windows are cut from the database's clock (date_bin), so replicas whose
 * clocks drift still share one window. `resetInSeconds` is at least 1.
 */
export async function countHit(sql: postgres.Sql, key: string, windowSeconds: number): Promise<{ hits: number; resetInSeconds: number }> {
  const [row] = await sql<{ hits: number; reset_in: number }[]>`
    insert into rate_limits as r (key, window_start, hits)
    values (${key}, date_bin(make_interval(secs => ${windowSeconds}), now(), timestamptz '2000-01-01 00:00:00+00'), 1)
    on conflict (key) do update set
      hits = case when r.window_start = excluded.window_start then r.hits + 1 else 1 end,
      window_start = excluded.window_start
    returning hits, greatest(1, ceil(extract(epoch from (window_start + make_interval(secs => ${windowSeconds}) - now()))))::int as reset_in`;
  return { hits: row.hits, resetInSeconds: row.reset_in };
}

/** Deletes counters whose window started more than `olderThanSeconds` ago; returns how many. */
export async function deleteStaleRateLimits(sql: postgres.Sql, olderThanSeconds: number): Promise<number> {
  const rows = await sql`delete from rate_limits where window_start < now() - make_interval(secs => ${olderThanSeconds}) returning key`;
  return rows.length;
}
