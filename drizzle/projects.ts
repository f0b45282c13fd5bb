import { pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** A tenant: its keys see only its tasks, and its secret signs its onComplete webhooks. */
export const projects = pgTable('projects', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** The `whsec_…` signing secret, sealed with the keyring (never stored in clear). */
  webhookSecretSealed: text('webhook_secret_sealed').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});
