import type { Context } from 'hono';
import type { RateLimitConfig } from '../config.ts';
import type { SharedCounter } from '../limits/rejection-counter.ts';
import type { NetworkList } from '../outbound/address-policy.ts';
import { clientIp, clientKey } from './client-ip.ts';

const MAX_BLOCKED = 100_000;

/** Failed API authentications per client address (see {@link authFailureLimit}). */
export interface AuthFailureLimit {
  /** Seconds until this client's window ends, if it has passed the limit; undefined otherwise. */
  blockedFor(c: Context): number | undefined;
  /** Counts one failed authentication; returns the seconds to wait if the client is now past the limit. */
  fail(c: Context): Promise<number | undefined>;
  /** The 429's detail. */
  readonly detail: string;
}

export interface AuthFailureLimitDeps {
  limits: RateLimitConfig;
  trustedProxies: NetworkList;
  /** The shared counter of the rate_limits table (the callback rejections use it too). */
  counter: SharedCounter;
  onError: (err: unknown) => void;
}

/**
 * 401s per client IP (or IPv6 /64), the way callback rejections are counted (DESIGN §5):
 * in PostgreSQL, shared by every replica, so the limit holds whichever replica a client reaches.
 * Once this process has seen an address pass the limit it remembers until the window ends and
 * answers that address's unknown keys 429 without a query (http/auth.ts), so a client spraying
 * keys costs the database at most `limit` lookups and counts per window, not one per request.
 */
export function authFailureLimit({ limits, trustedProxies, counter, onError }: AuthFailureLimitDeps): AuthFailureLimit | undefined {
  if (limits.authFailures === 0) return undefined;
  const blockedUntil = new Map<string, number>();
  const keyOf = (c: Context) => clientKey(clientIp(c, trustedProxies));
  return {
    detail: `More than ${limits.authFailures} failed authentications from this address in ${limits.windowSeconds} s`,
    blockedFor(c) {
      const key = keyOf(c);
      const until = blockedUntil.get(key);
      if (until === undefined) return undefined;
      if (until > Date.now()) return Math.max(1, Math.ceil((until - Date.now()) / 1000));
      blockedUntil.delete(key);
      return undefined;
    },
    async fail(c) {
      const key = keyOf(c);
      try {
        const { hits, resetInSeconds } = await counter.hit(`auth-reject:${key}`);
        if (hits <= limits.authFailures) return undefined;
        if (blockedUntil.size >= MAX_BLOCKED) blockedUntil.clear();
        blockedUntil.set(key, Date.now() + resetInSeconds * 1000);
        return resetInSeconds;
      } catch (err) {
        // Fail open: a counter that cannot be written must not turn 401s into 500s.
        onError(err);
        return undefined;
      }
    },
  };
}
