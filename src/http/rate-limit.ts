import { createMiddleware } from 'hono/factory';
import type { RateLimitConfig } from '../config.ts';
import type { SharedCounter } from '../limits/rejection-counter.ts';
import { createWindowCounter } from '../limits/window-counter.ts';
import type { NetworkList } from '../outbound/address-policy.ts';
import type { AuthEnv } from './auth.ts';
import { clientIp, clientKey } from './client-ip.ts';
import { tooMany } from './problem.ts';

/**
 * The answers counted as rejected callback attempts: DESIGN §5's 400/404/409/413, and 401 (a
 * callback whose signature does not verify, or a signal to a task that requires signed
 * callbacks) — a failure like the others, and each one is recorded on the task's timeline.
 */
const REJECTED = new Set([400, 401, 404, 409, 413, 415]);
const MAX_BLOCKED = 100_000;

export interface CallbackLimitDeps {
  limits: RateLimitConfig;
  trustedProxies: NetworkList;
  /** The shared counter of rejected attempts (rate_limits table). */
  rejections: SharedCounter;
  onError: (err: unknown) => void;
}

/**
 * The callback and signal limits (DESIGN §5), around the route:
 *
 * - Rejected attempts (400/401/404/409/413/415) counted in PostgreSQL, shared by every replica:
 *   only a rejection pays the extra upsert, so valid callbacks cost nothing. Past the limit a
 *   rejection is answered 429 instead; a valid callback is still accepted (a provider's egress IP
 *   that also sends some late or duplicate callbacks must not lose its good ones, and a 256-bit
 *   token cannot be guessed anyway). Once this process has seen the limit passed it answers
 *   further rejections from that address without the upsert until the window ends.
 * - A ceiling on every request of an address that is past that limit, counted in this process's
 *   memory: an abuser's requests still cost a token lookup each before they can be told apart
 *   from valid ones, and the ceiling bounds those. An address with no such history is never
 *   throttled, however many valid callbacks it delivers: one provider egress address may carry
 *   hundreds a second (an earlier ceiling on all requests, 1,200 a minute, answered 429 to a
 *   provider sending more than 20 valid callbacks a second).
 */
export function callbackLimits({ limits, trustedProxies, rejections, onError }: CallbackLimitDeps) {
  const windowMs = limits.windowSeconds * 1000;
  const ceiling = createWindowCounter(windowMs);
  const blockedUntil = new Map<string, number>();
  const isBlocked = (key: string) => {
    const until = blockedUntil.get(key);
    return until !== undefined && until > Date.now();
  };
  return createMiddleware(async (c, next) => {
    const key = clientKey(clientIp(c, trustedProxies));
    if (limits.callbackCeiling > 0 && isBlocked(key)) {
      const hit = ceiling.hit(key);
      if (hit.count > limits.callbackCeiling) {
        return tooMany(c, Math.max(1, Math.ceil((hit.resetAt - Date.now()) / 1000)), `More than ${limits.callbackCeiling} requests in ${limits.windowSeconds} s from this address, which is past its limit of rejected attempts`);
      }
    }
    await next();
    if (limits.callbackRejects === 0 || !REJECTED.has(c.res.status)) return;
    // A 413's body was left unread: the replacement must still close the connection.
    const extra: Record<string, string> = c.res.headers.get('connection') === 'close' ? { connection: 'close' } : {};
    const detail = `More than ${limits.callbackRejects} rejected attempts from this address in ${limits.windowSeconds} s`;
    if (isBlocked(key)) {
      c.res = tooMany(c, Math.max(1, Math.ceil((blockedUntil.get(key)! - Date.now()) / 1000)), detail, extra);
      return;
    }
    try {
      const { hits, resetInSeconds } = await rejections.hit(`callback-reject:${key}`);
      if (hits <= limits.callbackRejects) return;
      if (blockedUntil.size >= MAX_BLOCKED) blockedUntil.clear();
      blockedUntil.set(key, Date.now() + resetInSeconds * 1000);
      c.res = tooMany(c, resetInSeconds, detail, extra);
    } catch (err) {
      // Fail open: a counter that cannot be written must not turn rejections into 500s.
      onError(err);
    }
  });
}

/**
 * The per-key limit of the authenticated API, with X-RateLimit-Limit/Remaining/Reset (Reset in
 * Unix seconds) on every answer. Counted per process in memory: keys are few and known (this runs
 * after authentication), and the create path must not pay a round trip for it. Behind a load
 * balancer a key gets at most replicas × limit.
 */
export function apiKeyLimit(limits: RateLimitConfig) {
  const counter = createWindowCounter(limits.windowSeconds * 1000);
  return createMiddleware<AuthEnv>(async (c, next) => {
    if (limits.apiPerKey === 0) return next();
    const hit = counter.hit(c.get('keyHash'));
    const headers = {
      'x-ratelimit-limit': String(limits.apiPerKey),
      'x-ratelimit-remaining': String(Math.max(0, limits.apiPerKey - hit.count)),
      'x-ratelimit-reset': String(Math.ceil(hit.resetAt / 1000)),
    };
    if (hit.count > limits.apiPerKey) {
      return tooMany(c, Math.max(1, Math.ceil((hit.resetAt - Date.now()) / 1000)), `More than ${limits.apiPerKey} requests with this API key in ${limits.windowSeconds} s`, headers);
    }
    for (const [name, value] of Object.entries(headers)) c.header(name, value);
    await next();
  });
}
