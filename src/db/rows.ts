import { getTableColumns } from 'drizzle-orm';
import { type TaskRow, tasks } from '../../drizzle/schema.ts';
import type { Row } from './pipeline.ts';

const taskColumns = Object.entries(getTableColumns(tasks));

/**
 * A raw `tasks` row (snake_case, driver values: drizzle makes postgres.js hand timestamps back
 * as text) mapped the way drizzle's own queries map it, so raw and built queries give one type.
 */
export function toTaskRow(raw: Row): TaskRow {
  const out: Record<string, unknown> = {};
  for (const [key, column] of taskColumns) {
    const value = raw[column.name];
    out[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return out as TaskRow;
}
