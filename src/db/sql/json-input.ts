/*
 * The hot statements take their input rows as one jsonb parameter (`jsonb_to_recordset($1)`), so
 * one prepared statement writes any number of them; this is the rule they share.
 */

/**
 * The batched statements change a row once per statement: an UPDATE … FROM with two input rows
 * for the same task applies one of them, unpredictably, so a batch naming a task (or token) twice
 * is refused, and the batcher writes its items one by one.
 */
export function refuseRepeats(keys: string[], what: string): void {
  if (new Set(keys).size !== keys.length) throw new Error(`${what} appears twice in one statement`);
}
