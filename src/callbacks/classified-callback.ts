import type { StoredResult, TaskRow } from '../../drizzle/schema.ts';
import type { Relay } from '../context.ts';
import { type Decision, transact, withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { lockById } from '../db/sql/tasks.ts';
import type { NewEvent } from '../db/sql/events.ts';
import { CALLBACK_STATUSES, finishStatements, isTerminal } from '../tasks/finish-task.ts';
import { type BodyVerdict, type CallbackRules, classifyParsed, lacksResult, parseCallbackBody } from '../providers/callback-rules.ts';
import { matchFalRequest } from '../providers/fal-request.ts';
import { verifyStandardWebhook, type SignatureCheck } from '../providers/verify-signature.ts';
import { openRequest } from '../tasks/sealed-request.ts';
import { type PollJob, Queues } from '../jobs/queues.ts';
import { pollJobOptions } from '../providers/poll-start.ts';
import { findPreset } from '../providers/preset.ts';
import { type CappedEventType, keptPayload as kept, recordCapped } from './capped-events.ts';
import { lockTask } from '../db/sql/tasks.ts';
import type { CallbackOutcome, IncomingCallback } from './callback-outcome.ts';

async function checkSignature(relay: Relay, task: TaskRow, rules: CallbackRules, callback: IncomingCallback): Promise<SignatureCheck> {
  const headers = callback.headers?.() ?? {};
  if (rules.signature === 'fal') {
    const signed = await relay.fal.verify(headers, callback.body);
    return signed.ok ? matchFalRequest(relay, task, headers['x-fal-webhook-request-id']) : signed;
  }
  const secret = openRequest(relay.keyring, task.requestSealed).callbackSecret;
  if (!secret) return { ok: false, reason: 'no signing secret stored for this task' };
  return verifyStandardWebhook(secret, headers, callback.body);
}

/**
 * The callback of a task with callback rules (a preset, a callbackConfig or a required signature),
 * after the hot statement found it and changed nothing. The signature is checked and the body
 * classified before any lock; then, under the row lock: a terminal success completes the task,
 * a terminal failure fails it with the provider's error, progress is recorded and keeps the token;
 * a repeat of the accepted body is a duplicate, and a terminal result after the fallback poll (or
 * a signal) finished the task, or any progress after the end, is recorded as superseded and
 * answered 200, so the provider stops.
 */
export async function consumeClassifiedCallback(
  relay: Relay,
  callback: IncomingCallback,
  seen: TaskRow,
  bodyHash: string,
  stored: { body: string; bodyEncoding?: 'base64' },
): Promise<CallbackOutcome> {
  const rules = seen.callbackRules as CallbackRules;
  const size = callback.body.byteLength;
  if (rules.signature) {
    const check = await checkSignature(relay, seen, rules, callback);
    if (!check.ok) {
      const type = check.retryLater ? ('callback.deferred' as const) : ('callback.unauthorized' as const);
      await transact(relay.sql, { lock: lockTask(seen.id), event: recordCapped(seen.id, { type, data: { scheme: rules.signature, reason: check.reason, size } }) });
      return { outcome: check.retryLater ? 'not_ready' : 'unauthorized', task: seen };
    }
  }
  const missing = seen.provider ? findPreset(seen.provider)?.callback?.resultMissing : undefined;
  const parsed = rules.classify || missing ? parseCallbackBody(callback.body) : undefined;
  const verdict: BodyVerdict = rules.classify ? classifyParsed(parsed, rules.classify) : { kind: 'success' };
  const state = verdict.state === undefined ? {} : { state: verdict.state };
  const resultElsewhere = verdict.kind === 'success' && missing !== undefined && lacksResult(parsed, missing);

  return withLock(relay.sql, lockById(seen.id), async (rows): Promise<Decision<CallbackOutcome>> => {
    const task = rows[0] ? toTaskRow(rows[0]) : seen;
    // Every outcome but the acceptance is the token holder's to repeat: recorded within the caps.
    const record = (outcome: CallbackOutcome, [event]: [NewEvent & { type: CappedEventType }]) => ({ run: { recorded: recordCapped(task.id, event) }, done: () => outcome });
    if (task.callbackBodyHash === bodyHash) return record({ outcome: 'duplicate', task }, [{ type: 'callback.duplicate', data: { size } }]);
    if (isTerminal(task.status) && verdict.kind === 'progress') {
      // A progress event that arrives after the end (Luma's `dreaming` retried or out of order) is
      // stale, not a rejection: 200 so the provider stops, and no strike against its address.
      return record({ outcome: 'superseded', task }, [{ type: 'callback.superseded', data: { status: task.status, verdict: 'progress', size, ...state } }]);
    }
    if (task.status === 'timeout' || task.status === 'cancelled') {
      return record({ outcome: 'late', task }, [{ type: 'callback.late', data: { status: task.status, size, ...state, ...kept(stored) } }]);
    }
    if (isTerminal(task.status)) {
      if (!task.callbackBodyHash) {
        return record({ outcome: 'superseded', task }, [{ type: 'callback.superseded', data: { status: task.status, verdict: verdict.kind, size, ...state, ...kept(stored) } }]);
      }
      return record({ outcome: 'conflict', task }, [{ type: 'callback.rejected', data: { status: task.status, size, ...state } }]);
    }
    if (!CALLBACK_STATUSES.includes(task.status) || verdict.kind === 'progress') {
      return record({ outcome: 'progress', task }, [{ type: 'callback.progress', data: { status: task.status, size, ...state } }]);
    }
    if (resultElsewhere && task.providerJob) {
      // Done, but the result is not in the callback (fal: payload null, payload_error set): poll
      // now, and the poll fetches it where it lives. The job takes the current poll number, so
      // the fallback poll already scheduled becomes a no-op (see pollTask's count guard).
      const poll: PollJob = { taskId: task.id, poll: task.pollCount, errors: 0 };
      return {
        run: {
          progress: recordCapped(task.id, { type: 'callback.progress', data: { status: task.status, size, ...state, resultFetchedByPoll: true } }),
          poll: await relay.jobs.send(Queues.poll, poll, pollJobOptions(task, 0)),
        },
        done: (): CallbackOutcome => ({ outcome: 'progress', task }),
      };
    }
    const result: StoredResult = {
      statusCode: 200,
      headers: callback.contentType ? { 'content-type': callback.contentType } : {},
      ...stored,
      duration: Math.max(0, Date.now() - (task.dispatchedAt ?? task.createdAt).getTime()),
    };
    const accepted: NewEvent = { type: 'callback.accepted', data: { from: task.status, size, ...state, verdict: verdict.kind } };
    const finished = await finishStatements(relay, task, verdict.kind === 'success'
      ? { to: 'completed', result, error: null, callbackBodyHash: bodyHash, events: [accepted] }
      : { to: 'failed', result, error: { code: 'provider_failed', message: verdict.message }, callbackBodyHash: bodyHash, events: [accepted] });
    return {
      run: { finished },
      done: ({ finished }): CallbackOutcome => {
        relay.changes.publish([task.id]);
        return { outcome: 'accepted', task: toTaskRow(finished[0]) };
      },
    };
  });
}
