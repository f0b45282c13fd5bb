import { getTableColumns } from 'drizzle-orm';
import { type TaskRow, tasks } from '../../drizzle/schema.ts';
import type { Row } from './pipeline.ts';

/*
 * Raw `tasks` rows (snake_case, as postgres.js hands them back under drizzle's settings:
 * timestamps as text, jsonb already parsed) mapped to the shape drizzle's own queries give.
 * The column list is read from the drizzle table once; per row only timestamps need work.
 * (Calling each column's mapFromDriverValue per row showed up in profiles of the hot path.)
 */
const columns = Object.entries(getTableColumns(tasks)).map(([key, column]) => ({
  key,
  name: column.name,
  timestamp: column.columnType === 'PgTimestamp',
}));

export function toTaskRow(raw: Row): TaskRow {
  const out: Record<string, unknown> = {};
  for (const { key, name, timestamp } of columns) {
    const value = raw[name];
    if (value === null || value === undefined) out[key] = null;
    else out[key] = timestamp && !(value instanceof Date) ? new Date(value as string) : value;
  }
  return out as TaskRow;
}
