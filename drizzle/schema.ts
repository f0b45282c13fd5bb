export * from './projects.ts';
export * from './api-keys.ts';
export * from './tasks.ts';
export * from './task-events.ts';
export * from './rate-limits.ts';
export * from './settings.ts';
