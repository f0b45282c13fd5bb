ALTER TABLE "tasks" ADD COLUMN "callback_rules" jsonb;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "provider_job" jsonb;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "poll_count" integer DEFAULT 0 NOT NULL;