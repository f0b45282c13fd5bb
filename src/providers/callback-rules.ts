import { z } from 'zod';
import { PATH_SHAPE, parseJsonBody, readPath } from './json-path.ts';

const Path = z.string().max(256).regex(PATH_SHAPE, 'must be a dotted path such as status');
const Scalar = z.union([z.string().max(256), z.number(), z.boolean()]);

/**
 * (+) `callbackConfig` of a task without a preset: how to read its callbacks. A body whose value at
 * `statusPath` is in `doneValues` completes the task, in `failValues` fails it (message at
 * `errorPath`); any other body is progress (202, token kept).
 */
export const CallbackConfig = z.strictObject({
  statusPath: Path,
  doneValues: z.array(Scalar).min(1).max(32),
  failValues: z.array(Scalar).max(32).default([]),
  errorPath: Path.optional(),
});
export type CallbackConfig = z.infer<typeof CallbackConfig>;

/** (+) `callbackSignature`: callbacks must be signed; others are refused with 401. */
export const CallbackSignature = z.discriminatedUnion('scheme', [
  z.strictObject({
    scheme: z.literal('standard-webhooks'),
    /** The provider's signing secret (Replicate: GET /v1/webhooks/default/secret). Stored sealed. */
    secret: z.string().max(256).regex(/^whsec_[A-Za-z0-9+/]{16,}={0,2}$/, 'must be a whsec_… secret'),
  }),
  /** fal's Ed25519 signatures, keys from the relay's JWKS URL (RELAY_FAL_JWKS_URL). */
  z.strictObject({ scheme: z.literal('fal') }),
]);
export type CallbackSignature = z.infer<typeof CallbackSignature>;

/** What the relay stores in clear about reading a task's callbacks (the secret is sealed). */
export interface CallbackRules {
  classify?: CallbackConfig;
  signature?: CallbackSignature['scheme'];
}

export type BodyVerdict =
  | { kind: 'success'; state?: string }
  | { kind: 'failure'; state?: string; message: string }
  | { kind: 'progress'; state?: string };

const matches = (value: unknown, candidates: Array<string | number | boolean>) =>
  value !== undefined && value !== null && typeof value !== 'object' && candidates.some((c) => String(c) === String(value));

/** A readable error out of whatever the provider put at `errorPath` (string, object or list). */
export function errorText(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
}

/** Classifies a parsed body by its status value (callbacks and polls share this rule). */
export function classifyParsed(
  parsed: unknown,
  rule: { statusPath: string; doneValues: Array<string | number | boolean>; failValues: Array<string | number | boolean>; errorPath?: string },
): BodyVerdict {
  const value = readPath(parsed, rule.statusPath);
  const state = value === undefined || value === null || typeof value === 'object' ? undefined : String(value);
  if (matches(value, rule.doneValues)) return { kind: 'success', state };
  if (matches(value, rule.failValues)) {
    const message = errorText(rule.errorPath ? readPath(parsed, rule.errorPath) : undefined) ?? `Provider reported ${rule.statusPath} = ${state}`;
    return { kind: 'failure', state, message };
  }
  return { kind: 'progress', state };
}

/** A callback body (raw bytes) as JSON; undefined when it is not JSON (then it is progress, never a result). */
export function parseCallbackBody(body: Uint8Array): unknown {
  return parseJsonBody(Buffer.from(body).toString('utf8'));
}

/** A success whose result is elsewhere (a preset's `resultMissing`): `emptyPath` null or absent, `markerPath` set. */
export function lacksResult(parsed: unknown, rule: { emptyPath: string; markerPath: string }): boolean {
  const empty = readPath(parsed, rule.emptyPath);
  const marker = readPath(parsed, rule.markerPath);
  return (empty === null || empty === undefined) && marker !== undefined && marker !== null && marker !== '';
}
