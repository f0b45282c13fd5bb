import { randomBytes } from 'node:crypto';

/*
 * Random bytes for the hot path (callback tokens, task ids, AES-GCM nonces) taken from a pool
 * filled by the CSPRNG 8 KiB at a time: one `randomBytes` call per request showed as ~3 % of the
 * relay's CPU per task creation, most of it the per-call cost, not the bytes. Each byte is handed
 * out once; a refill allocates a new pool, so slices handed out earlier never change.
 */
const POOL_BYTES = 8192;
let pool = randomBytes(POOL_BYTES);
let offset = 0;

/** `n` (≤ 8192) fresh random bytes, as a view the caller may keep and modify. */
export function takeRandomBytes(n: number): Buffer {
  if (n > POOL_BYTES) return randomBytes(n);
  if (offset + n > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const bytes = pool.subarray(offset, offset + n);
  offset += n;
  return bytes;
}
