import { takeRandomBytes } from './secrets/random.ts';

/**
 * A UUID v7 (RFC 9562): 48-bit unix milliseconds, then random bits. Task ids sort by creation
 * time, which is what the keyset cursor of GET /v1/tasks relies on.
 */
export function uuidv7(now: number = Date.now()): string {
  const bytes = takeRandomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The millisecond timestamp a v7 id was minted at. */
export function uuidv7Time(id: string): number {
  return Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
}
