import { AppError } from '../errors.ts';
import { type Keyring, UnknownKeyIdError } from '../secrets/keyring.ts';

/** What dispatch needs that must never sit in clear in the database. */
export interface SealedRequest {
  headers: Record<string, string>;
  body?: string;
  /** The callback token, needed to substitute `{asyncqueue_callback_url}` at dispatch time. */
  token?: string;
  /** The real target URL, present only when the row's `target_url` is redacted (credentials in it). */
  targetUrl?: string;
  /** The provider's standard-webhooks secret, when the task requires signed callbacks. */
  callbackSecret?: string;
}

export function sealRequest(keyring: Keyring, request: SealedRequest): string {
  return keyring.seal(JSON.stringify(request));
}

/**
 * Opens a task's sealed request. One sealed under a dropped key id fails what needs it (its view,
 * dispatch, delivery) as a retryable 503 that names the key id, until the key is back.
 */
export function openRequest(keyring: Keyring, blob: string): SealedRequest {
  try {
    return JSON.parse(keyring.open(blob)) as SealedRequest;
  } catch (err) {
    if (!(err instanceof UnknownKeyIdError)) throw err;
    throw new AppError('unavailable', 503, `This task's sealed request cannot be opened: ${err.message}`, { retryable: true });
  }
}

/** The URL dispatch must call: the sealed one when the stored URL had credentials redacted. */
export function targetUrlOf(row: { targetUrl: string }, request: SealedRequest): string {
  return request.targetUrl ?? row.targetUrl;
}
