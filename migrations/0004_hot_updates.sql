DROP INDEX "tasks_project_status_id_idx";--> statement-breakpoint
DROP INDEX "tasks_completed_at_idx";