import { pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Server-wide values that must never sit in clear, each sealed with the keyring
 * (RELAY_ENCRYPTION_KEY): e.g. `server-secret`, the key of the HMACs that API keys and
 * idempotency fingerprints are stored as. A dump of this table without the encryption key
 * reveals nothing; the boot and `asyncrelay reseal` re-seal rows under the first key.
 */
export const settings = pgTable('settings', {
  name: text('name').primaryKey(),
  sealedValue: text('sealed_value').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});
