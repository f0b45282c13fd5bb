-- Custom migration: wake long-polls (GET /v1/tasks/:id?wait=N) on any replica when a task's status changes.
CREATE OR REPLACE FUNCTION relay_task_status_notify() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('relay_task_status', NEW.id::text);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER tasks_status_notify
  AFTER UPDATE OF status ON tasks
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION relay_task_status_notify();
