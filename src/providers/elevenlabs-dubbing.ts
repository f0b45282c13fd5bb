import type { ProviderPreset } from './provider-preset.ts';

/**
 * ElevenLabs dubbing: poll only. `POST /v1/dubbing` answers `{ dubbing_id }`;
 * `GET /v1/dubbing/{dubbing_id}` answers status `dubbing`, then `dubbed` or `failed` (`error`).
 * The audio itself is `GET /v1/dubbing/{id}/audio/{language_code}` (not fetched: one file per
 * language). No cancel endpoint is documented.
 */
export const elevenlabsDubbing: ProviderPreset = {
  id: 'elevenlabs-dubbing',
  name: 'ElevenLabs dubbing',
  docs: 'https://elevenlabs.io/docs/api-reference/dubbing',
  poll: {
    urlTemplate: '{target.origin}/v1/dubbing/{startResult.body.dubbing_id}',
    interval: 10,
    statusPath: 'status',
    doneValues: ['dubbed'],
    failValues: ['failed'],
    errorPath: 'error',
    forwardAuth: true,
  },
  output: 'the dubbing metadata (`target_languages` …); fetch audio with GET /v1/dubbing/{id}/audio/{language_code}',
  error: '`error`; status failed',
};
