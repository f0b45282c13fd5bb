import type postgres from 'postgres';

/*
 * Re-sealing across tables: tasks' sealed requests (`tasks.request_sealed`), walked in id order
 * in batches, and the count of blobs per key id over every sealed column (`tasks`, `projects`,
 * `settings`). The projects' and the settings' own re-seal statements are with their tables
 * (projects.ts, settings.ts). A blob's key id is its second dot-separated part, read with
 * `split_part`, since a kid may hold LIKE's `_`.
 */

/** Up to `limit` tasks after `afterId` (in id order) whose request is sealed under another key id than `kid`. */
export async function listTaskRequestsNotUnder(sql: postgres.Sql, kid: string, afterId: string, limit: number): Promise<{ id: string; sealed: string }[]> {
  return sql<{ id: string; sealed: string }[]>`
    select id, request_sealed as sealed from tasks
    where id > ${afterId}::uuid and split_part(request_sealed, '.', 2) <> ${kid}
    order by id limit ${limit}`;
}

/**
 * Replaces each task's sealed request by its new blob only where it is still the old one
 * (compare-and-set: replicas and `asyncrelay reseal` may race). One statement for the batch;
 * returns the rows changed.
 */
export async function replaceTaskRequests(sql: postgres.Sql, ids: string[], olds: string[], news: string[]): Promise<number> {
  const updated = await sql`
    update tasks t set request_sealed = u.sealed
    from (select unnest(${ids}::uuid[]) as id, unnest(${olds}::text[]) as old, unnest(${news}::text[]) as sealed) u
    where t.id = u.id and t.request_sealed = u.old`;
  return updated.count;
}

/** Sealed blobs per key id, across every sealed column, in key id order. */
export async function countSealedBlobsByKid(sql: postgres.Sql): Promise<{ kid: string; n: number }[]> {
  return sql<{ kid: string; n: number }[]>`
    select kid, count(*)::int as n from (
      select split_part(request_sealed, '.', 2) as kid from tasks
      union all select split_part(webhook_secret_sealed, '.', 2) from projects
      union all select split_part(sealed_value, '.', 2) from settings
    ) s group by kid order by kid`;
}
