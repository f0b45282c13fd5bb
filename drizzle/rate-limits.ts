import { integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Fixed-window counters shared by every replica (DESIGN §5): one row per key (e.g.
 * `callback-reject:<ip>`), reset in place when a new window starts, so a key costs one row.
 * Rows of keys that went quiet are deleted by the daily purge.
 */
export const rateLimits = pgTable('rate_limits', {
  key: text('key').primaryKey(),
  windowStart: timestamp('window_start', { withTimezone: true }).notNull(),
  hits: integer('hits').notNull(),
});
