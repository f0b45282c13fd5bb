import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { TaskStatus as TaskStatusValue } from '../../../drizzle/schema.ts';
import type { Relay } from '../../context.ts';
import { redeliverTask } from '../../delivery/redeliver.ts';
import { invalid } from '../../errors.ts';
import { cancelTask } from '../../tasks/cancel-task.ts';
import { createTask } from '../../tasks/create-task.ts';
import { listEvents } from '../../tasks/events.ts';
import { isTerminal } from '../../tasks/finish-task.ts';
import { getTask } from '../../tasks/get-task.ts';
import { listTasks } from '../../tasks/list-tasks.ts';
import { waitForTask } from '../../tasks/wait-for-change.ts';
import { openRequest } from '../../tasks/sealed-request.ts';
import { toTaskView } from '../../tasks/task-view.ts';
import { callbackUrlFor } from '../../callbacks/token.ts';
import type { AuthEnv } from '../auth.ts';
import { CreateTaskInput, isStorableText } from '../../tasks/schemas.ts';
import { CreateTaskResponse, Problem, TaskEnvelope, TaskEventPage, TaskList, TaskStatus } from '../schemas.ts';

const problems = {
  400: { description: 'Invalid request', content: { 'application/problem+json': { schema: Problem } } },
  401: { description: 'Missing or invalid API key', content: { 'application/problem+json': { schema: Problem } } },
  404: { description: 'No such task in this project', content: { 'application/problem+json': { schema: Problem } } },
};
const security: Array<Record<string, string[]>> = [{ apiKey: [] }, { bearer: [] }];
const IdParam = z.object({ id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }) });
const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });

const createTaskRoute = createRoute({
  method: 'post',
  path: '/v1/tasks',
  security,
  request: {
    headers: z.object({ 'idempotency-key': z.string().min(1).max(255).optional() }),
    body: { content: { 'application/json': { schema: CreateTaskInput } }, required: true },
  },
  responses: {
    201: json(CreateTaskResponse, 'Task created; the callback token is shown only here'),
    200: json(CreateTaskResponse, 'Replay of an Idempotency-Key: the task created before'),
    ...problems,
    422: { description: 'Idempotency-Key reused with a different body', content: { 'application/problem+json': { schema: Problem } } },
    429: { description: 'Too many creations of this API key waiting (RELAY_CREATE_QUEUE_PER_KEY), or its rate limit; retry after Retry-After', content: { 'application/problem+json': { schema: Problem } } },
    503: { description: 'Too many creations waiting (RELAY_CREATE_CONCURRENCY); retry after Retry-After', content: { 'application/problem+json': { schema: Problem } } },
  },
});

const getTaskRoute = createRoute({
  method: 'get',
  path: '/v1/tasks/{id}',
  security,
  request: {
    params: IdParam,
    query: z.object({
      wait: z.coerce.number().int().min(0).max(25).optional().openapi({ description: 'Long-poll up to N seconds for a status change' }),
      seenStatus: TaskStatus.optional().openapi({
        description: 'The status the caller last saw: with wait, answer at once if the task is no longer in it (no change slips between two polls)',
      }),
    }),
  },
  responses: {
    200: json(TaskEnvelope, 'The task'),
    ...problems,
    429: { description: 'Too many long-polls of this API key open at once (RELAY_LONG_POLLS_PER_KEY); Retry-After is the wait asked for', content: { 'application/problem+json': { schema: Problem } } },
  },
});

const listTasksRoute = createRoute({
  method: 'get',
  path: '/v1/tasks',
  security,
  request: {
    query: z.object({
      status: z.string().optional().openapi({ description: 'One status or a comma-separated list' }),
      provider: z.string().max(64).refine(isStorableText, { message: 'must not contain NUL or unpaired surrogates' }).optional(),
      limit: z.coerce.number().int().min(1).max(100).default(20),
      cursor: z.string().max(200).optional(),
      offset: z.coerce.number().int().min(0).max(100_000).optional(),
    }),
  },
  responses: { 200: json(TaskList, 'Tasks, newest first. Filter metadata with metadata.KEY=VALUE.'), ...problems },
});

/** Largest page of a timeline, and the default: one page holds a whole ordinary timeline. */
const MAX_EVENTS_PAGE = 1000;

const eventsRoute = createRoute({
  method: 'get',
  path: '/v1/tasks/{id}/events',
  security,
  request: {
    params: IdParam,
    query: z.object({
      after: z
        .string()
        .regex(/^\d{1,15}$/, 'must be an event id (the nextCursor of the previous page)')
        .optional()
        .openapi({ description: 'Only events after this id: the nextCursor of the previous page' }),
      limit: z.coerce.number().int().min(1).max(MAX_EVENTS_PAGE).default(MAX_EVENTS_PAGE),
    }),
  },
  responses: { 200: json(TaskEventPage, 'The timeline, oldest first, a page at a time (keyset on the event id)'), ...problems },
});

const cancelRoute = createRoute({
  method: 'post',
  path: '/v1/tasks/{id}/cancel',
  security,
  request: { params: IdParam },
  responses: { 200: json(TaskEnvelope, 'Cancelled'), ...problems, 409: { description: 'Already finished', content: { 'application/problem+json': { schema: Problem } } } },
});

const redeliverRoute = createRoute({
  method: 'post',
  path: '/v1/tasks/{id}/redeliver',
  security,
  request: { params: IdParam },
  responses: { 202: json(TaskEnvelope, 'A new delivery round is queued'), ...problems, 409: { description: 'Task not finished', content: { 'application/problem+json': { schema: Problem } } } },
});

function parseStatuses(value: string | undefined): TaskStatusValue[] | undefined {
  if (!value) return undefined;
  const parsed = z.array(TaskStatus).safeParse(value.split(',').map((s) => s.trim()));
  if (!parsed.success) throw invalid(`status must be a comma-separated list of: ${TaskStatus.options.join(', ')}`);
  return parsed.data;
}

/** `metadata.K=V` query parameters, as a containment filter. */
function parseMetadataFilter(queries: Record<string, string[]>): Record<string, string> {
  const filter: Record<string, string> = {};
  for (const [name, values] of Object.entries(queries)) {
    if (name.startsWith('metadata.') && name.length > 'metadata.'.length) filter[name.slice('metadata.'.length)] = values[0];
  }
  // jsonb refuses these; a filter holding them could match nothing anyway.
  if (Object.entries(filter).some(([k, v]) => !isStorableText(k) || !isStorableText(v))) {
    throw invalid('metadata filters must not contain NUL or unpaired surrogates');
  }
  return filter;
}

/** The authenticated task routes. Thin: validate, call one verb, map the result. */
export function registerTaskRoutes(app: OpenAPIHono<AuthEnv>, relay: Relay): void {
  app.openapi(createTaskRoute, async (c) => {
    const input = c.req.valid('json');
    const idempotencyKey = c.req.valid('header')['idempotency-key'];
    const created = await createTask(relay, { projectId: c.get('projectId'), keyHash: c.get('keyHash') }, input, idempotencyKey, c.get('deadline'));
    const view = toTaskView(created.task, relay.keyring, created.outcome === 'created' ? { body: created.body } : undefined);
    // A replay answers what the first request was answered, token included: a client that lost
    // that answer must still be able to hand the callback URL on or signal the task.
    const token = created.outcome === 'created' ? created.token : openRequest(relay.keyring, created.task.requestSealed).token;
    const answer = token
      ? { task: { ...view, callbackId: token }, callbackUrl: callbackUrlFor(relay.publicUrl, token), signalToken: token }
      : { task: view };
    return c.json(answer, created.outcome === 'created' ? 201 : 200);
  });

  app.openapi(getTaskRoute, async (c) => {
    const { id } = c.req.valid('param');
    const { wait, seenStatus } = c.req.valid('query');
    const projectId = c.get('projectId');
    const before = await getTask(relay.db, projectId, id);
    if (!wait || isTerminal(before.status) || (seenStatus !== undefined && before.status !== seenStatus)) {
      return c.json({ task: toTaskView(before, relay.keyring) }, 200);
    }
    const after = await waitForTask(relay, projectId, id, before.status, wait * 1000, c.req.raw.signal);
    return c.json({ task: toTaskView(after, relay.keyring) }, 200);
  });

  app.openapi(listTasksRoute, async (c) => {
    const query = c.req.valid('query');
    const page = await listTasks(relay.db, c.get('projectId'), {
      statuses: parseStatuses(query.status),
      provider: query.provider,
      metadata: parseMetadataFilter(c.req.queries()),
      limit: query.limit,
      cursor: query.cursor,
      offset: query.offset,
    });
    return c.json(
      {
        tasks: page.rows.map((row) => toTaskView(row, relay.keyring)),
        pagination: {
          limit: query.limit,
          hasMore: page.hasMore,
          nextCursor: page.nextCursor,
          // A cursor wins over an offset; the offset is echoed only when it was used.
          ...(query.offset !== undefined && !query.cursor ? { offset: query.offset } : {}),
        },
      },
      200,
    );
  });

  app.openapi(eventsRoute, async (c) => {
    const { id } = c.req.valid('param');
    const { after, limit } = c.req.valid('query');
    await getTask(relay.db, c.get('projectId'), id);
    // One more than the page: whether another page follows, without a count.
    const rows = await listEvents(relay.db, id, after === undefined ? 0 : Number(after), limit + 1);
    const page = rows.slice(0, limit);
    const hasMore = rows.length > limit;
    return c.json(
      {
        events: page.map((e) => ({ id: e.id, at: e.at.toISOString(), type: e.type, data: e.data })),
        pagination: { limit, hasMore, nextCursor: hasMore ? String(page[page.length - 1].id) : null },
      },
      200,
    );
  });

  app.openapi(cancelRoute, async (c) => {
    const row = await cancelTask(relay, c.get('projectId'), c.req.valid('param').id);
    return c.json({ task: toTaskView(row, relay.keyring) }, 200);
  });

  app.openapi(redeliverRoute, async (c) => {
    const row = await redeliverTask(relay, c.get('projectId'), c.req.valid('param').id);
    return c.json({ task: toTaskView(row, relay.keyring) }, 202);
  });
}
