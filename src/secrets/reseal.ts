import type postgres from 'postgres';
import type { DbOrTx } from '../db/client.ts';
import { listProjectSecretsNotUnder, replaceProjectSecret } from '../db/sql/projects.ts';
import { countSealedBlobsByKid, listTaskRequestsNotUnder, replaceTaskRequests } from '../db/sql/reseal.ts';
import type { Keyring } from './keyring.ts';

/*
 * Re-sealing moves blobs sealed under older key ids to the keyring's first key, so that an old
 * key can leave RELAY_ENCRYPTION_KEY without stranding anything (README, rotation). Every write
 * is a compare-and-set on the old blob: replicas and a running `asyncrelay reseal` may race, and
 * nothing else is ever overwritten. A blob that cannot be opened (its key is gone) is left as it
 * is and reported; only what needs it fails.
 */

/** A blob left under another key id because it could not be opened. */
export interface Unreadable {
  /** The project id or task id. */
  id: string;
  reason: string;
}

export interface ResealReport {
  resealed: number;
  unreadable: Unreadable[];
}

/** Opens and re-seals one blob under the first key; the reason when it cannot be opened. */
function reseal(keyring: Keyring, blob: string): { blob: string } | { reason: string } {
  try {
    return { blob: keyring.seal(keyring.open(blob)) };
  } catch (err) {
    return { reason: (err as Error).message };
  }
}

/**
 * Re-seals every project's webhook signing secret under the first key. Run at boot (delivery
 * needs these) and by `asyncrelay reseal`; a handful of rows.
 */
export async function resealProjectSecrets(db: DbOrTx, keyring: Keyring): Promise<ResealReport> {
  const rows = await listProjectSecretsNotUnder(db, keyring.sealingKid);
  const report: ResealReport = { resealed: 0, unreadable: [] };
  for (const row of rows) {
    const done = reseal(keyring, row.sealed);
    if ('reason' in done) {
      report.unreadable.push({ id: row.id, reason: done.reason });
      continue;
    }
    const updated = await replaceProjectSecret(db, row.id, row.sealed, done.blob);
    report.resealed += updated;
  }
  return report;
}

/**
 * Re-seals tasks' sealed requests under the first key, `batchSize` rows per statement, walking
 * the table in id order. Resumable by construction: a row once re-sealed no longer matches, so
 * running again after an interruption continues where it stopped. `onBatch` reports progress.
 */
export async function resealTasks(
  sql: postgres.Sql,
  keyring: Keyring,
  options: { batchSize?: number; onBatch?: (report: ResealReport & { scanned: number }) => void } = {},
): Promise<ResealReport & { scanned: number }> {
  const batchSize = options.batchSize ?? 500;
  const kid = keyring.sealingKid;
  const report = { resealed: 0, unreadable: [] as Unreadable[], scanned: 0 };
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await listTaskRequestsNotUnder(sql, kid, after, batchSize);
    if (rows.length === 0) return report;
    after = rows[rows.length - 1].id;
    report.scanned += rows.length;
    const ids: string[] = [];
    const olds: string[] = [];
    const news: string[] = [];
    for (const row of rows) {
      const done = reseal(keyring, row.sealed);
      if ('reason' in done) {
        report.unreadable.push({ id: row.id, reason: done.reason });
        continue;
      }
      ids.push(row.id);
      olds.push(row.sealed);
      news.push(done.blob);
    }
    if (ids.length > 0) {
      const updated = await replaceTaskRequests(sql, ids, olds, news);
      report.resealed += updated;
    }
    options.onBatch?.(report);
  }
}

/** Sealed blobs per key id, across every sealed column: what an operator checks before dropping a key. */
export async function countSealedByKid(sql: postgres.Sql): Promise<Record<string, number>> {
  const rows = await countSealedBlobsByKid(sql);
  return Object.fromEntries(rows.map((r) => [r.kid, r.n]));
}
