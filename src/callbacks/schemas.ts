import { z } from 'zod';
import { isStorableText, jsonDepthWithin, MAX_BODY_DEPTH, StorableText } from '../tasks/schemas.ts';

/** A signal: the caller's own verdict on a task that waits for one (DESIGN §5). */
export const SignalInput = z
  .strictObject({
    status: z.enum(['completed', 'failed']),
    result: z
      .unknown()
      .refine((r) => typeof r !== 'string' || isStorableText(r), { message: 'must not contain NUL or unpaired surrogates' })
      // Bounded like a task body: serialising a deeper value recursed until the stack ran out (500).
      .refine((r) => jsonDepthWithin(r, MAX_BODY_DEPTH), { message: `must not nest deeper than ${MAX_BODY_DEPTH} levels` })
      .optional(),
    error: z.union([StorableText(4096), z.object({ code: StorableText(128).optional(), message: StorableText(4096) })]).optional(),
  })
  .meta({ id: 'SignalInput' });
export type SignalInput = z.infer<typeof SignalInput>;
