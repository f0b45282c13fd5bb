import type { NewEvent } from '../../tasks/events.ts';

/*
 * The hot statements take their input rows as one jsonb parameter (`jsonb_to_recordset($1)`), so
 * one prepared statement writes any number of them; these are the pieces they share.
 */

/** Events as the statements read them (`e->>'type'`, `e->'data'`), inside a jsonb parameter. */
export const eventRows = (events: NewEvent[]) => events.map((e) => ({ type: e.type, data: e.data ?? {} }));

/** Events as one jsonb parameter, so one prepared statement records any number of them. */
export const eventsParam = (events: NewEvent[]) => JSON.stringify(eventRows(events));

/**
 * The batched statements change a row once per statement: an UPDATE … FROM with two input rows
 * for the same task applies one of them, unpredictably, so a batch naming a task (or token) twice
 * is refused, and the batcher writes its items one by one.
 */
export function refuseRepeats(keys: string[], what: string): void {
  if (new Set(keys).size !== keys.length) throw new Error(`${what} appears twice in one statement`);
}
