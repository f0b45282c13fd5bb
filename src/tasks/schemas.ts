/*
 * The task as the domain defines it: what a create accepts (validated before anything is written)
 * and the view every answer and webhook shows. Plain zod; the HTTP layer (http/schemas.ts) builds
 * its envelopes on these and names them in the OpenAPI document by their `id`.
 */
import { z } from 'zod';
import { CALLBACK_PLACEHOLDER } from '../callbacks/token.ts';
import { HeaderName, HeaderValue, sendableHeaders } from '../outbound/header-rules.ts';
import { CallbackConfig, CallbackSignature } from '../providers/callback-rules.ts';
import { PollConfigInput } from '../providers/poll-config.ts';

/** Statuses of DESIGN §4. */
export const TaskStatus = z
  .enum(['delayed', 'pending', 'processing', 'waiting', 'polling', 'completed', 'failed', 'timeout', 'cancelled']);

const MAX_URL_LENGTH = 8192;

/**
 * PostgreSQL text and jsonb refuse NUL and lone UTF-16 surrogates; a string headed for a column
 * in clear must be refused here with a 400, not by the database with a 500.
 */
export function isStorableText(value: string): boolean {
  return !value.includes('\0') && value.isWellFormed();
}
/** Nesting of a JSON value, checked without recursion (a hostile body must not exhaust the stack). */
export function jsonDepthWithin(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= max) return false;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return true;
}
/** Bounds of the JSON values a task carries (DESIGN leaves them open; these keep rows and serialisation small and safe). */
export const MAX_BODY_DEPTH = 64;
const MAX_POLL_CONFIG_BYTES = 16 * 1024;
const MAX_HEADERS_BYTES = 64 * 1024;

export const StorableText = (max: number) => z.string().max(max).refine(isStorableText, { message: 'must not contain NUL or unpaired surrogates' });

/** An http(s) URL; `{asyncqueue_callback_url}` may stand anywhere in it when `placeholder` is allowed. */
function httpUrl(placeholder: boolean) {
  return z
    .string()
    .max(MAX_URL_LENGTH)
    .refine(
      (value) => {
        if (!isStorableText(value)) return false;
        const probe = placeholder ? value.replaceAll(CALLBACK_PLACEHOLDER, 'x') : value;
        if (!URL.canParse(probe)) return false;
        const { protocol } = new URL(probe);
        return protocol === 'http:' || protocol === 'https:';
      },
      { message: 'must be an absolute http(s) URL' },
    );
}

export const Metadata = z
  .record(StorableText(64).min(1), StorableText(512))
  .refine((m) => Object.keys(m).length <= 16, { message: 'at most 16 keys' })
  .meta({ id: 'Metadata' });

export const CreateTaskInput = z
  .strictObject({
    targetUrl: httpUrl(true).meta({ example: 'https://queue.fal.run/fal-ai/flux/dev?fal_webhook={asyncqueue_callback_url}' }),
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('POST'),
    headers: z
      .record(HeaderName, HeaderValue(16_384))
      .superRefine(sendableHeaders)
      .refine((h) => Object.keys(h).length <= 64, { message: 'at most 64 headers' })
      .refine((h) => Object.entries(h).reduce((n, [k, v]) => n + k.length + v.length, 0) <= MAX_HEADERS_BYTES, {
        message: `at most ${MAX_HEADERS_BYTES} characters of names and values in all`,
      })
      .default({}),
    body: z
      .unknown()
      .refine((b) => jsonDepthWithin(b, MAX_BODY_DEPTH), { message: `must not nest deeper than ${MAX_BODY_DEPTH} levels` })
      .optional()
      .meta({ description: 'A string sent as is, or any JSON value (serialised). Ignored for GET.' }),
    waitForSignal: z.boolean().default(false),
    maxWaitTime: z.int().min(1).max(604_800).default(600),
    timeout: z.int().min(1).max(600).default(30),
    maxRetries: z.int().min(0).max(10).default(3),
    retryBackoff: z.enum(['exponential', 'linear']).default('exponential'),
    delayUntil: z.iso.datetime({ offset: true }).optional(),
    priority: z.int().min(1).max(10).default(5),
    onCompleteUrl: httpUrl(false).optional(),
    provider: z.string().min(1).max(64).optional().meta({ description: 'A preset id (GET /v1/providers)' }),
    pollConfig: PollConfigInput.refine((p) => jsonDepthWithin(p, 8) && JSON.stringify(p).length <= MAX_POLL_CONFIG_BYTES, {
      message: `must be at most ${MAX_POLL_CONFIG_BYTES} bytes of JSON, nested at most 8 levels`,
    })
      .optional()
      .meta({ description: 'Poll the provider; over a preset, these keys override its pollConfig' }),
    callbackConfig: CallbackConfig.optional().meta({ description: '(+) How to classify callbacks without a preset' }),
    callbackSignature: CallbackSignature.optional().meta({ description: '(+) Require signed callbacks (401 otherwise)' }),
    metadata: Metadata.default({}),
  })
  .meta({ id: 'CreateTaskInput' });
export type CreateTaskInput = z.infer<typeof CreateTaskInput>;

export const TaskResult = z
  .object({
    statusCode: z.int(),
    headers: z.record(z.string(), z.string()),
    body: z.string(),
    bodyEncoding: z.literal('base64').optional(),
    truncated: z.boolean().optional(),
    duration: z.number(),
  })
  .meta({ id: 'TaskResult' });

export const TaskError = z
  .object({ code: z.string(), message: z.string(), statusCode: z.int().optional() })
  .meta({ id: 'TaskError' });

export const DeliveryView = z
  .object({
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.int(),
    nextAttemptAt: z.string().nullable(),
  })
  .meta({ id: 'Delivery' });

export const TaskView = z
  .object({
    id: z.uuid(),
    status: TaskStatus,
    targetUrl: z.string(),
    method: z.string(),
    headers: z.record(z.string(), z.string()),
    body: z.string().nullable(),
    waitForSignal: z.boolean(),
    maxWaitTime: z.int(),
    timeout: z.int(),
    maxRetries: z.int(),
    retryBackoff: z.enum(['exponential', 'linear']),
    delayUntil: z.string().nullable(),
    priority: z.int(),
    onCompleteUrl: z.string().nullable(),
    provider: z.string().nullable(),
    pollConfig: z.record(z.string(), z.unknown()).nullable(),
    callbackConfig: z.record(z.string(), z.unknown()).nullable(),
    callbackSignature: z.object({ scheme: z.string() }).nullable(),
    metadata: z.record(z.string(), z.string()),
    result: TaskResult.nullable(),
    error: TaskError.nullable(),
    retryCount: z.int(),
    delivery: DeliveryView.nullable(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    completedAt: z.string().nullable(),
    updatedAt: z.string(),
  });
export type TaskView = z.infer<typeof TaskView>;
