import { CALLBACK_PLACEHOLDER } from '../callbacks/token.ts';

/** True when any part of the request mentions `{asyncqueue_callback_url}`. */
export function mentionsPlaceholder(parts: { targetUrl: string; headers: Record<string, string>; body?: string }): boolean {
  return (
    parts.targetUrl.includes(CALLBACK_PLACEHOLDER) ||
    (parts.body?.includes(CALLBACK_PLACEHOLDER) ?? false) ||
    Object.values(parts.headers).some((v) => v.includes(CALLBACK_PLACEHOLDER))
  );
}

/**
 * Puts the callback URL into a target URL. In the query it must be URL-encoded
 * (`?fal_webhook=https%3A%2F%2F…`) or its own `/` and `?` would corrupt the provider's URL;
 * in the path it goes in as is (a provider that wants it there wants the plain URL).
 */
export function substituteUrl(template: string, callbackUrl: string | undefined): string {
  if (callbackUrl === undefined || !template.includes(CALLBACK_PLACEHOLDER)) return template;
  const queryStart = template.indexOf('?');
  const path = queryStart === -1 ? template : template.slice(0, queryStart);
  const query = queryStart === -1 ? '' : template.slice(queryStart);
  return (
    path.replaceAll(CALLBACK_PLACEHOLDER, callbackUrl) +
    query.replaceAll(CALLBACK_PLACEHOLDER, encodeURIComponent(callbackUrl))
  );
}

/**
 * Puts the callback URL into headers or a body. The URL is ours (`<publicUrl>/v1/callbacks/<hex>`,
 * normalised by URL parsing at boot), so it holds no quote or backslash and is safe inside a
 * JSON string as is.
 */
export function substituteText(template: string, callbackUrl: string | undefined): string {
  if (callbackUrl === undefined) return template;
  return template.replaceAll(CALLBACK_PLACEHOLDER, callbackUrl);
}
