import { z } from '@hono/zod-openapi';
import { TaskStatus as DomainTaskStatus, TaskView } from '../tasks/schemas.ts';

/* The envelopes and pages the API answers with, around the domain's schemas (tasks/schemas.ts). */

/**
 * The task and its status as the API names them in the OpenAPI document: built here, with the
 * zod that @hono/zod-openapi extends, from the domain's schemas (a domain schema may have been
 * made before that extension was loaded, and then has no `.openapi`). What extends or annotates
 * them is described as a reference plus the difference (the create answer: the Task plus
 * `callbackId`) instead of a copy of every field.
 */
export const TaskStatus = z.enum(DomainTaskStatus.options).openapi('TaskStatus');
const Task = z.object({ ...TaskView.shape, status: TaskStatus }).openapi('Task');

export const TaskEnvelope = z.object({ task: Task }).openapi('TaskEnvelope');

/**
 * What a callback or signal is answered: the `{task}` envelope of DESIGN §5 with only what the
 * caller needs to know happened. The token is a write credential for one result, not a read
 * credential: body, metadata, onCompleteUrl and result are for the API key's holder.
 */
export const TaskStatusEnvelope = z
  .object({ task: z.object({ id: z.uuid(), status: TaskStatus }) })
  .openapi('TaskStatusEnvelope');
export type TaskStatusEnvelope = z.infer<typeof TaskStatusEnvelope>;

export const CreateTaskResponse = z
  .object({
    task: Task.extend({ callbackId: z.string().optional() }),
    callbackUrl: z.string().optional(),
    signalToken: z.string().optional(),
  })
  .openapi('CreateTaskResponse');

export const TaskList = z
  .object({
    tasks: z.array(Task),
    pagination: z.object({
      limit: z.int(),
      hasMore: z.boolean(),
      nextCursor: z.string().nullable(),
      offset: z.int().optional(),
    }),
  })
  .openapi('TaskList');

export const TaskEvent = z
  .object({ id: z.int(), at: z.string(), type: z.string(), data: z.record(z.string(), z.unknown()) })
  .openapi('TaskEvent');

/** A page of a task's timeline, oldest first; `nextCursor` is the `after` of the next page. */
export const TaskEventPage = z
  .object({
    events: z.array(TaskEvent),
    pagination: z.object({ limit: z.int(), hasMore: z.boolean(), nextCursor: z.string().nullable() }),
  })
  .openapi('TaskEventPage');

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    code: z.string(),
    error: z.string(),
    requestId: z.string(),
  })
  .openapi('Problem');
