/**
 * Whether an error means "the database cannot be reached right now" (DESIGN §8): requests answer
 * 503 with Retry-After and work is retried, instead of a 500. Covers postgres.js's own connection
 * errors, socket errors, the SQLSTATEs of a server that is shutting down, starting up or full,
 * node-postgres's messages (pg-boss's pool), and a statement cancelled by our own deadline.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e = error as Failure | undefined, depth = 0; e && depth < 5; e = e.cause, depth++) {
    if (typeof e.code === 'string' && (DRIVER_CODES.has(e.code) || UNAVAILABLE_SQLSTATE.test(e.code))) return true;
    if (typeof e.message === 'string' && PG_MESSAGES.test(e.message)) return true;
    if (Array.isArray(e.errors) && e.errors.some(isDatabaseUnavailable)) return true;
  }
  return false;
}

interface Failure {
  code?: unknown;
  message?: unknown;
  cause?: Failure;
  errors?: unknown[];
}

const DRIVER_CODES = new Set([
  'CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED', 'CONNECT_TIMEOUT',
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN',
]);

// 08: connection exception; 57P01–57P03: admin shutdown, crash shutdown, cannot connect now;
// 53300: too many connections; 57014: query cancelled (our request deadline, see 0009_create_deadline).
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[123]|53300|57014)$/;

const PG_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended unexpectedly/i;
