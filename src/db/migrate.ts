import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { RECONNECT } from './client.ts';

const migrationsFolder = fileURLToPath(new URL('../../migrations', import.meta.url));
/** An arbitrary constant: every replica takes the same session lock before migrating. */
const MIGRATION_LOCK = 0x61_73_79_6e; // "asyn"

/**
 * Applies pending drizzle-kit migrations. Two replicas starting together would race on
 * CREATE TABLE; the session advisory lock makes the second wait and then find nothing to do.
 */
export async function migrateDatabase(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: RECONNECT.connect_timeout });
  try {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK})`;
    try {
      await migrate(drizzle(sql), { migrationsFolder });
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}
