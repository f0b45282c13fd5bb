import { elevenlabsDubbing } from './elevenlabs-dubbing.ts';
import { fal } from './fal.ts';
import { luma } from './luma.ts';
import type { ProviderPreset } from './provider-preset.ts';
import { replicate } from './replicate.ts';
import { runwayml } from './runwayml.ts';
import { stabilityVideo } from './stability-video.ts';

export const PRESETS: ProviderPreset[] = [fal, replicate, runwayml, luma, stabilityVideo, elevenlabsDubbing];

const byId = new Map(PRESETS.map((p) => [p.id, p]));

export function findPreset(id: string): ProviderPreset | undefined {
  return byId.get(id);
}
