import { z } from 'zod';
import { HeaderName, HeaderValue, sendableHeaders } from '../outbound/header-rules.ts';
import { isSensitiveHeader } from '../outbound/header-rules.ts';
import { redactUrl } from '../tasks/redact.ts';
import { canonicalUrl } from '../tasks/url-template.ts';
import { invalidRef, PATH_SHAPE, templateRefs } from './json-path.ts';

/*
 * pollConfig (DESIGN §4) with AsyncQueue's keys, plus extensions (+) the presets need:
 * `statusCodes` (Stability decides by HTTP status), `headers` (static, non-secret poll headers),
 * `initialDelay`, and `cancelUrlTemplate`/`cancelMethod` (provider-side cancel).
 */

const Path = z.string().max(256).regex(PATH_SHAPE, 'must be a dotted path such as status or urls.get');
const Scalar = z.union([z.string().max(256), z.number(), z.boolean()]);
const StatusCode = z.int().min(100).max(599);
const ALLOWED_ROOTS: Record<string, string[]> = {
  urlTemplate: ['startResult', 'target'],
  cancelUrlTemplate: ['startResult', 'target'],
  resultUrlTemplate: ['startResult', 'pollResult', 'target'],
};

const REFERENCE = /\{[^{}]*\}/g;

/** A URL template: `{…}` references must be known, and the rest must make an http(s) URL. */
const Template = (key: keyof typeof ALLOWED_ROOTS) =>
  z
    .string()
    .min(1)
    .max(8192)
    .superRefine((value, ctx) => {
      const refs = templateRefs(value);
      for (const ref of refs) {
        const why = invalidRef(ref.root, ref.path) ?? (ALLOWED_ROOTS[key].includes(ref.root) ? undefined : `${key} cannot use {${ref.root}.…}`);
        if (why) ctx.addIssue({ code: 'custom', message: why });
      }
      // Judged on the WHATWG parse (what the poll sends), so no spelling (`https:user:pw@…`, a tab
      // in the scheme) slips by. A template that starts with a reference takes its origin from the
      // answer: the reference stands for the host, so `{ref}:pw@host` still shows its userinfo.
      const canonical = canonicalUrl(refs[0]?.at === 0 ? `https://${value}` : value, REFERENCE);
      if (!canonical) {
        ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL, or start with a reference such as {startResult.body.status_url}' });
      } else if (redactUrl(canonical) !== canonical) {
        // pollConfig is stored and shown in clear (tasks, provider job, poll events, views, webhooks).
        ctx.addIssue({ code: 'custom', message: 'must not carry credentials (userinfo or a ?key=/token=/sig=… parameter would be stored in clear): put them in the task headers and set forwardAuth' });
      }
    });

/** Every key optional: what a task may send, alone or over a preset's pollConfig. */
export const PollConfigInput = z.strictObject({
  /** Where to poll: `{startResult.body.status_url}`, `https://api.example.com/v1/tasks/{startResult.body.id}`. */
  urlTemplate: Template('urlTemplate').optional(),
  /** Seconds between polls while the job runs (1…3600). */
  interval: z.number().min(1).max(3600).optional(),
  /** Where the poll answer holds the job's status. */
  statusPath: Path.optional(),
  /** Status values meaning success. */
  doneValues: z.array(Scalar).min(1).max(32).optional(),
  /** Status values meaning failure. */
  failValues: z.array(Scalar).max(32).optional(),
  /** (+) Decide by HTTP status code instead: e.g. `{ running: [202], done: [200] }`; any other 4xx fails. */
  statusCodes: z.strictObject({ running: z.array(StatusCode).min(1).max(16), done: z.array(StatusCode).min(1).max(16) }).optional(),
  /** Where the output is inside the final poll answer (default: the whole answer is the result). */
  resultPath: Path.optional(),
  /** When done, fetch the result here (may use `{pollResult.…}`): 2xx is the result, other 4xx a failure. */
  resultUrlTemplate: Template('resultUrlTemplate').optional(),
  /** Where the error message is in a failed answer. */
  errorPath: Path.optional(),
  /** Send the task's credential headers (the sealed ones: authorization, *key*, *token* …) with each poll. */
  forwardAuth: z.boolean().optional(),
  /** Seconds from the submit answer until polling ends the task as `timeout` (default maxWaitTime). */
  maxDuration: z.int().min(1).max(604_800).optional(),
  /** (+) Seconds before the first poll (default: interval). */
  initialDelay: z.number().min(0).max(3600).optional(),
  /** (+) Static headers for polls, e.g. `{ "accept": "video/*" }`; credentials belong in the task's headers (forwardAuth). */
  headers: z
    .record(HeaderName, HeaderValue(1024))
    .superRefine(sendableHeaders)
    .refine((h) => Object.keys(h).length <= 16, { message: 'at most 16 headers' })
    .refine((h) => !Object.keys(h).some(isSensitiveHeader), { message: 'must not carry credentials (they would be stored in clear): put them in the task headers and set forwardAuth' })
    .optional(),
  /** (+) The provider's cancel endpoint, called when the task is cancelled or times out. */
  cancelUrlTemplate: Template('cancelUrlTemplate').optional(),
  /** (+) Method of the cancel call (default POST). */
  cancelMethod: z.enum(['POST', 'PUT', 'DELETE']).optional(),
});
export type PollConfigInput = z.infer<typeof PollConfigInput>;

/** A complete pollConfig, as stored on a task and used by the poll engine. */
export type PollConfig = PollConfigInput & { urlTemplate: string; interval: number; forwardAuth: boolean; failValues: Array<string | number | boolean> };

/** Completes a (merged) pollConfig, or says what is missing. */
export function completePollConfig(input: PollConfigInput): { ok: true; config: PollConfig } | { ok: false; message: string } {
  if (!input.urlTemplate) return { ok: false, message: 'pollConfig.urlTemplate: required' };
  if (!input.statusCodes && !(input.statusPath && input.doneValues)) {
    return { ok: false, message: 'pollConfig: needs statusPath with doneValues, or statusCodes' };
  }
  return { ok: true, config: { ...input, urlTemplate: input.urlTemplate, interval: input.interval ?? 5, forwardAuth: input.forwardAuth ?? false, failValues: input.failValues ?? [] } };
}
