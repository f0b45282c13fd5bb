import type postgres from 'postgres';
import { createBatcher } from '../db/batcher.ts';
import { transact } from '../db/pipeline.ts';
import { type DeliveryRecord, recordDeliveries } from '../db/sql/deliveries.ts';

/** Writes attempt records that have no follow-up job; records made together share one statement. */
export function createDeliveryRecorder(sql: postgres.Sql): (record: DeliveryRecord) => Promise<void> {
  const write = async (records: DeliveryRecord[]): Promise<void[]> => {
    await transact(sql, { recorded: recordDeliveries(records) });
    return records.map(() => undefined);
  };
  return createBatcher({ many: write });
}
