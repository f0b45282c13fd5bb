-- Custom migration: tell every replica to forget a cached API key the moment it is revoked or deleted.
CREATE OR REPLACE FUNCTION relay_api_key_notify() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('relay_api_keys', OLD.key_hash);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;
--> statement-breakpoint
CREATE TRIGGER api_keys_notify
  AFTER UPDATE OR DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION relay_api_key_notify();
