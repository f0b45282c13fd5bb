import type { TaskRow } from '../../drizzle/schema.ts';
import { mintCallbackToken, sha256Hex } from '../callbacks/token.ts';
import type { Relay } from '../context.ts';
import { pgErrorCode } from '../db/client.ts';
import type { Deadline } from '../deadline.ts';
import { nothing, withLock } from '../db/pipeline.ts';
import { toTaskRow } from '../db/rows.ts';
import { lockByIdempotencyKey, releaseIdempotencyKey } from '../db/sql/tasks.ts';
import { AppError, invalid } from '../errors.ts';
import type { CreateTaskInput } from './schemas.ts';
import { uuidv7 } from '../ids.ts';
import { planProviderTask } from '../providers/plan-task.ts';
import { insertTaskStatements, type NewTask } from '../writers/tasks.ts';
import { redactHeaders, redactUrl } from './redact.ts';
import { sealRequest } from './sealed-request.ts';
import { mentionsPlaceholder } from './template.ts';
import { canonicalUrl } from './url-template.ts';

/** An `Idempotency-Key` is honoured for this long (DESIGN §4). */
const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

export type CreateTaskOutcome =
  | { outcome: 'created'; task: TaskRow; token?: string; body?: string }
  | { outcome: 'replayed'; task: TaskRow };

/** JSON with object keys sorted at every depth: the same request always has the same fingerprint. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * Tasks created before fingerprints were keyed hold the plain SHA-256 of the request; they are
 * replayable for the rest of their 24 h window. (Remove once no release older than this runs.)
 */
function isLegacyFingerprint(stored: string | null, canonical: string): boolean {
  return stored !== null && stored === sha256Hex(canonical);
}

const unauthorized = () => new AppError('unauthorized', 401, 'Missing or invalid API key');

/** The INSERT found no active key (revoked after the auth check): the caller is not authorised. */
function keyRevokedMeanwhile(error: unknown): AppError | undefined {
  return pgErrorCode(error) === '23502' ? unauthorized() : undefined;
}

/** The body as it will be sent: a string stays as is, any other JSON value is serialised. */
function serialiseBody(input: CreateTaskInput): { body?: string; json: boolean } {
  if (input.method === 'GET' || input.body === undefined) return { json: false };
  if (typeof input.body === 'string') return { body: input.body, json: false };
  return { body: JSON.stringify(input.body), json: true };
}

/**
 * Creates a task and enqueues its first dispatch in one transaction. When the task will wait
 * for a callback, a token is minted here, returned once, and stored only as its SHA-256 (plus
 * sealed inside the request blob, because dispatch must substitute it later). With a `deadline`,
 * a create still queued when it passes is dropped, and its statement writes nothing if it only
 * reaches PostgreSQL after `writeBy`: the client was answered 503 and will retry.
 */
export async function createTask(
  relay: Relay,
  caller: { projectId: string; keyHash: string },
  given: CreateTaskInput,
  idempotencyKey?: string,
  deadline?: Deadline,
): Promise<CreateTaskOutcome> {
  const { projectId, keyHash } = caller;
  // From here on the target URL is spelled as the parser reads it and undici sends it, so the
  // redaction below sees every credential however the client wrote it (tasks/url-template.ts).
  const targetUrl = canonicalUrl(given.targetUrl);
  if (targetUrl === undefined) throw invalid('targetUrl: must be an absolute http(s) URL');
  const input: CreateTaskInput = { ...given, targetUrl };
  const plan = planProviderTask(input);
  const { body, json } = serialiseBody(plan.input);
  const headers = { ...input.headers };
  if (json && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
    headers['content-type'] = 'application/json';
  }
  const waits = plan.waits || mentionsPlaceholder({ targetUrl: plan.input.targetUrl, headers, body });
  const token = waits ? mintCallbackToken() : undefined;
  const delayUntil = input.delayUntil ? new Date(input.delayUntil) : undefined;
  const delayed = delayUntil !== undefined && delayUntil.getTime() > Date.now();
  const canonical = idempotencyKey ? canonicalJson(input) : undefined;
  // Keyed: the request holds credentials, and a plain hash of it in the row could be tested against guesses.
  const fingerprint = canonical === undefined ? undefined : relay.hashes.fingerprint(canonical);
  const shownUrl = redactUrl(plan.input.targetUrl);

  const values = {
    id: uuidv7(),
    status: delayed ? ('delayed' as const) : ('pending' as const),
    targetUrl: shownUrl,
    method: input.method,
    headersView: redactHeaders(headers),
    requestSealed: sealRequest(relay.keyring, {
      headers,
      body,
      token,
      ...(shownUrl !== plan.input.targetUrl && { targetUrl: plan.input.targetUrl }),
      ...(plan.callbackSecret && { callbackSecret: plan.callbackSecret }),
    }),
    waitForSignal: input.waitForSignal,
    maxWaitTime: input.maxWaitTime,
    timeout: input.timeout,
    maxRetries: input.maxRetries,
    retryBackoff: input.retryBackoff,
    delayUntil: delayUntil ?? null,
    priority: input.priority,
    onCompleteUrl: input.onCompleteUrl ?? null,
    metadata: input.metadata,
    provider: input.provider ?? null,
    pollConfig: plan.pollConfig,
    callbackRules: plan.callbackRules as Record<string, unknown> | null,
    callbackHash: token ? sha256Hex(token) : null,
    idempotencyKey: idempotencyKey ?? null,
    idempotencyFingerprint: fingerprint ?? null,
  };
  const task: NewTask = {
    keyHash,
    writeBy: deadline?.writeBy,
    values,
    events: [{ type: 'task.created', data: { status: values.status, waits, ...(delayed ? { delayUntil: input.delayUntil } : {}) } }],
    job: {
      data: { taskId: values.id },
      priority: input.priority,
      ...(delayed ? { startAfter: delayUntil } : {}),
      // A worker that died mid-call frees the job for another after this long.
      expireInSeconds: input.timeout + 60,
    },
    delayed,
  };
  const created = (row: TaskRow): CreateTaskOutcome => ({ outcome: 'created', task: row, token, body });
  if (!idempotencyKey) {
    try {
      return created(await relay.writers.task(task, deadline?.signal));
    } catch (error) {
      throw keyRevokedMeanwhile(error) ?? error;
    }
  }

  const { statements: insert, wake } = await insertTaskStatements(relay.jobs, [task]);
  const attempt = () =>
    withLock(relay.sql, lockByIdempotencyKey(projectId, idempotencyKey, keyHash), (rows) => {
      if (!rows[0].key_active) throw unauthorized();
      const existing = rows[0].id ? toTaskRow(rows[0]) : undefined;
      if (existing && Date.now() - existing.createdAt.getTime() < IDEMPOTENCY_WINDOW_MS) {
        if (existing.idempotencyFingerprint !== fingerprint && !isLegacyFingerprint(existing.idempotencyFingerprint, canonical!)) {
          throw new AppError('idempotency_conflict', 422, 'Idempotency-Key was already used with a different request body');
        }
        return nothing<CreateTaskOutcome>({ outcome: 'replayed', task: existing });
      }
      // Expired: the key is free again; the old task keeps everything but the key.
      return {
        run: { released: existing ? releaseIdempotencyKey(relay.db, existing.id) : [], inserted: insert },
        done: ({ inserted }): CreateTaskOutcome => {
          // The dispatch job's wake-up goes out after the commit (a delayed task needs none).
          relay.jobs.wake(wake);
          return created(toTaskRow(inserted[0]));
        },
      };
    });
  try {
    return await attempt();
  } catch (error) {
    // Two requests with the same new key raced: the loser's INSERT hit the unique index.
    // Running again finds the winner's row and answers as a replay (or a 422).
    if (pgErrorCode(error) === '23505') return attempt();
    throw keyRevokedMeanwhile(error) ?? error;
  }
}
