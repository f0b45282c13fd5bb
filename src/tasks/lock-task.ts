import type { SQL } from 'drizzle-orm';
import { tasks } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { type Statement, statementOf } from '../db/pipeline.ts';

/** `SELECT * FROM tasks WHERE … FOR UPDATE`: the first half of every lock-then-decide change. */
export function lockTask(relay: Relay, where: SQL | undefined): Statement {
  return statementOf(relay.db.select().from(tasks).where(where).for('update'));
}
