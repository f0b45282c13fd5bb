/** The closed set of error codes an API answer can carry. */
export type ErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'idempotency_conflict'
  | 'payload_too_large'
  | 'unsupported'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'overloaded'
  /** The database, or a secret the answer needs, is unavailable: retry after Retry-After. */
  | 'unavailable'
  /** Not yet decidable (a fal webhook before its request id is known): retry after Retry-After. */
  | 'not_ready'
  | 'internal';

/**
 * An expected failure with its HTTP mapping. `error` is AsyncQueue's error string; problem+json
 * fields are derived from it by the app's one onError.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  constructor(code: ErrorCode, status: number, message: string, options: { retryable?: boolean } = {}) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.status = status;
    this.retryable = options.retryable ?? false;
  }
}

export const invalid = (message: string) => new AppError('invalid_request', 400, message);
export const notFound = (message = 'Task not found') => new AppError('not_found', 404, message);
export const conflict = (message: string) => new AppError('conflict', 409, message);
