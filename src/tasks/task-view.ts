import type { TaskRow } from '../../drizzle/schema.ts';
import type { TaskView } from './schemas.ts';
import type { CallbackRules } from '../providers/callback-rules.ts';
import type { Keyring } from '../secrets/keyring.ts';
import { openRequest, type SealedRequest } from './sealed-request.ts';

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

/**
 * The only way a task leaves the relay. Headers come pre-redacted from the row; the body is
 * opened from the sealed request as the client's template (the token is never in it: the
 * placeholder is substituted only in the outgoing request).
 */
export function toTaskView(row: TaskRow, keyring: Keyring, opened?: Pick<SealedRequest, 'body'>): TaskView {
  // A caller that has just sealed the request (task creation) hands its body over: no decrypt.
  const { body } = opened ?? openRequest(keyring, row.requestSealed);
  return {
    id: row.id,
    status: row.status,
    targetUrl: row.targetUrl,
    method: row.method,
    headers: row.headersView,
    body: body ?? null,
    waitForSignal: row.waitForSignal,
    maxWaitTime: row.maxWaitTime,
    timeout: row.timeout,
    maxRetries: row.maxRetries,
    retryBackoff: row.retryBackoff,
    delayUntil: iso(row.delayUntil),
    priority: row.priority,
    onCompleteUrl: row.onCompleteUrl,
    provider: row.provider,
    pollConfig: row.pollConfig,
    callbackConfig: (row.callbackRules as CallbackRules | null)?.classify ?? null,
    callbackSignature: (row.callbackRules as CallbackRules | null)?.signature ? { scheme: (row.callbackRules as CallbackRules).signature! } : null,
    metadata: row.metadata,
    result: row.result,
    error: row.error,
    retryCount: row.retryCount,
    delivery: row.deliveryStatus
      ? { status: row.deliveryStatus, attempts: row.deliveryAttempts, nextAttemptAt: iso(row.deliveryNextAt) }
      : null,
    createdAt: row.createdAt.toISOString(),
    startedAt: iso(row.startedAt),
    completedAt: iso(row.completedAt),
    updatedAt: row.updatedAt.toISOString(),
  };
}
