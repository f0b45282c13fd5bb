-- Custom migration: drop the per-transition NOTIFY added in 0001. NOTIFY takes a database-wide
-- lock held through commit, so it serialised every task transition (measured: 7190 → 2840
-- commits/s on 2 cores). Long-polls now re-read the row instead (src/tasks/status-watcher.ts).
DROP TRIGGER IF EXISTS tasks_status_notify ON tasks;
--> statement-breakpoint
DROP FUNCTION IF EXISTS relay_task_status_notify();
--> statement-breakpoint
-- Likewise the API-key trigger of 0002: keys are now re-checked inside the statements that use
-- them (src/projects/key-cache.ts), so no replica needs telling about a revocation.
DROP TRIGGER IF EXISTS api_keys_notify ON api_keys;
--> statement-breakpoint
DROP FUNCTION IF EXISTS relay_api_key_notify();
