import type { ProviderPreset } from './provider-preset.ts';

/**
 * Runway API: no webhooks, poll only. Submit answers `{ "id" }`; `GET /v1/tasks/{id}` on the
 * same origin answers PENDING, THROTTLED (over the concurrency limit, not an error), RUNNING,
 * then SUCCEEDED (`output[]`) or FAILED (`failure`, `failureCode`) / CANCELLED. Runway asks for
 * no more than one poll per 5 s, and every request needs `X-Runway-Version`. Cancel: DELETE.
 */
export const runwayml: ProviderPreset = {
  id: 'runwayml',
  name: 'Runway API',
  docs: 'https://docs.dev.runwayml.com/',
  poll: {
    urlTemplate: '{target.origin}/v1/tasks/{startResult.body.id}',
    interval: 6,
    statusPath: 'status',
    doneValues: ['SUCCEEDED'],
    failValues: ['FAILED', 'CANCELLED'],
    errorPath: 'failure',
    forwardAuth: true,
    headers: { 'X-Runway-Version': '2024-11-06' },
    cancelUrlTemplate: '{target.origin}/v1/tasks/{startResult.body.id}',
    cancelMethod: 'DELETE',
  },
  output: 'the task object, output URLs in `output` (expire after 24–48 h)',
  error: '`failure` (machine code in `failureCode`); status FAILED or CANCELLED',
};
