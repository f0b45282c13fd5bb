import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskRow } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import type { ProviderJob } from '../db/sql/polling.ts';
import { findTaskProviderJob } from '../db/sql/task-reads.ts';
import type { SignatureCheck } from './verify-signature.ts';

/** How often a held webhook re-reads its task for the submit answer. */
const RECHECK_MS = 100;

/** A task whose submit has not been answered yet: its provider job (and request id) may still come. */
const beforeSubmitAnswer = (status: TaskRow['status']) => status === 'pending' || status === 'processing';

/**
 * Ties a validly fal-signed webhook to this task. fal signs every account's webhooks with one
 * platform key, so the signature alone proves that fal sent it, for anyone's request: whoever
 * learns a callback URL could have fal deliver a real webhook of their own request to it. The
 * signed X-Fal-Webhook-Request-Id must be the `request_id` of this task's submit answer, which
 * the fal preset records with the provider job (poll-start.ts).
 *
 * The race of DESIGN §5 — fal may call back before its submit answer reaches us, while the task
 * is still pending or processing and no request id is known — is met by waiting for the answer
 * (re-reading the row, at most `timings.falRequestWaitMs`): the answer normally follows within
 * milliseconds, and the webhook is then judged and accepted. If it does not come in time the
 * webhook is answered 503 (`retryLater`) and fal's own retries (10 over 2 h) deliver it again.
 * The webhook is never accepted unchecked.
 */
export async function matchFalRequest(relay: Relay, seen: TaskRow, signedId: string): Promise<SignatureCheck> {
  let status = seen.status;
  let job = seen.providerJob as ProviderJob | null;
  if (!job && beforeSubmitAnswer(status)) {
    relay.log.debug({ taskId: seen.id }, 'fal webhook before its request id is known: it waits for the submit answer');
    const deadline = Date.now() + relay.timings.falRequestWaitMs;
    while (!job && beforeSubmitAnswer(status) && Date.now() < deadline) {
      await sleep(Math.min(RECHECK_MS, deadline - Date.now()));
      const row = await findTaskProviderJob(relay.db, seen.id);
      if (!row) break;
      status = row.status;
      job = row.providerJob as ProviderJob | null;
    }
    if (!job && beforeSubmitAnswer(status)) {
      return { ok: false, reason: "the task's fal request id is not known yet (its submit answer is still in flight)", retryLater: true };
    }
  }
  if (!job?.requestId) return { ok: false, reason: "the task has no fal request id (fal's submit answer named none) to tie a webhook to" };
  if (job.requestId !== signedId) {
    return { ok: false, reason: `X-Fal-Webhook-Request-Id ${signedId.slice(0, 128)} is not this task's fal request (${job.requestId})` };
  }
  return { ok: true };
}
