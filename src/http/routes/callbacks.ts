import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { applySignal } from '../../callbacks/apply-signal.ts';
import { consumeCallback } from '../../callbacks/consume-callback.ts';
import type { Relay } from '../../context.ts';
import type { TaskRow } from '../../../drizzle/schema.ts';
import type { AuthEnv } from '../auth.ts';
import { limitBody } from '../body-limit.ts';
import { problem } from '../problem.ts';
import { SignalInput } from '../../callbacks/schemas.ts';
import { Problem, TaskStatusEnvelope } from '../schemas.ts';

/** Callback bodies above this are refused with 413 (DESIGN §5). */
export const CALLBACK_BODY_LIMIT = 1024 * 1024;

const problemOf = (description: string) => ({ description, content: { 'application/problem+json': { schema: Problem } } });
// No length rule here: anything that is not a 64-hex token is answered 404 like an unknown one.
const TokenParam = (name: string) => z.object({ [name]: z.string().openapi({ param: { name, in: 'path' } }) });

const callbackRoute = createRoute({
  method: 'post',
  path: '/v1/callbacks/{callbackId}',
  request: { params: TokenParam('callbackId') },
  description:
    'The provider posts its result here. Any content type; stored raw as result.body. No auth: the 256-bit token is the credential, ' +
    'for writing this one result only: answers carry the task id and status, never its content (read that with an API key).',
  responses: {
    200: { description: 'Accepted (or a repeat of the accepted body, or a result after the poll finished the task)', content: { 'application/json': { schema: TaskStatusEnvelope } } },
    202: { description: "A provider's progress event: recorded, the callback URL stays valid", content: { 'application/json': { schema: TaskStatusEnvelope } } },
    401: problemOf('The task requires signed callbacks and this one is not validly signed'),
    404: problemOf('Invalid or expired callback ID'),
    409: problemOf('Task already finished with another result, timed out or was cancelled'),
    413: problemOf('Body over 1 MiB'),
    503: problemOf("A fal-signed callback that came before the task's submit answer (and so its fal request id): retry after Retry-After"),
  },
});

const signalRoute = createRoute({
  method: 'post',
  path: '/v1/signals/{token}',
  request: { params: TokenParam('token'), body: { content: { 'application/json': { schema: SignalInput } }, required: true } },
  description: 'Finish a waiting task explicitly. No auth: the token is the credential. The answer carries the task id and status only.',
  responses: {
    200: { description: 'Applied', content: { 'application/json': { schema: TaskStatusEnvelope } } },
    400: problemOf('Invalid body'),
    401: problemOf('The task requires signed callbacks (callbackSignature): signals cannot finish it'),
    404: problemOf('Invalid or expired token'),
    409: problemOf('Task already finished'),
  },
});

const tooLarge = limitBody(CALLBACK_BODY_LIMIT, 'Callback body');

/** Retry-After of a callback answered 503 because its task's submit answer is still in flight. */
const NOT_READY_RETRY_SECONDS = 5;

const notWaiting = (status: string) => `Task is not in waiting/polling state (current: ${status})`;

/** The answer to a token holder: what happened, never the task's content (see TaskStatusEnvelope). */
const statusOf = (task: TaskRow): TaskStatusEnvelope => ({ task: { id: task.id, status: task.status } });

/** The unauthenticated endpoints providers and clients call with a token. */
export function registerCallbackRoutes(app: OpenAPIHono<AuthEnv>, relay: Relay): void {
  app.use('/v1/callbacks/*', tooLarge);
  app.use('/v1/signals/*', tooLarge);

  app.openapi(callbackRoute, async (c) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    const outcome = await consumeCallback(relay, {
      token: c.req.valid('param').callbackId,
      body,
      contentType: c.req.header('content-type'),
      headers: () => c.req.header(),
    });
    switch (outcome.outcome) {
      case 'accepted':
      case 'duplicate':
      case 'superseded':
        return c.json(statusOf(outcome.task), 200);
      case 'progress':
        return c.json(statusOf(outcome.task), 202);
      case 'unauthorized':
        return problem(c, 401, 'unauthorized', 'Callback signature missing or invalid') as never;
      case 'not_ready':
        c.header('retry-after', String(NOT_READY_RETRY_SECONDS));
        return problem(c, 503, 'not_ready', "The task's provider request is not known yet; retry later") as never;
      case 'conflict':
      case 'late':
        return problem(c, 409, 'conflict', notWaiting(outcome.task.status)) as never;
      case 'unknown':
        return problem(c, 404, 'not_found', 'Invalid or expired callback ID') as never;
    }
  });

  app.openapi(signalRoute, async (c) => {
    const outcome = await applySignal(relay, c.req.valid('param').token, c.req.valid('json'));
    switch (outcome.outcome) {
      case 'accepted':
        return c.json(statusOf(outcome.task), 200);
      case 'unauthorized':
        return problem(c, 401, 'unauthorized', 'This task requires signed callbacks; a signal cannot finish it') as never;
      case 'conflict':
        return problem(c, 409, 'conflict', notWaiting(outcome.task.status)) as never;
      case 'unknown':
        return problem(c, 404, 'not_found', 'Invalid or expired signal token') as never;
    }
  });
}
