import { index, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { projects } from './projects.ts';

/**
 * API keys, stored only as `key_hash`: `hmac:` + HMAC-SHA256 under the server secret (see
 * secrets/server-secret.ts), or, for rows written before it existed, the plain SHA-256 hex, which
 * is replaced by the HMAC on the key's first use. `prefix` (7 characters) lets an operator
 * recognise a key in `keys list` without revealing it.
 */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    projectId: text('project_id')
      .notNull()
      .references(() => projects.id),
    name: text('name').notNull(),
    keyHash: text('key_hash').notNull().unique(),
    prefix: text('prefix').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [index('api_keys_project_idx').on(t.projectId)],
);
