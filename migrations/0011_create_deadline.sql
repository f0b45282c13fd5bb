-- A create that is answered 503 because it missed its deadline must never be written later
-- (the client retries it). The create statement calls this on its input rows: once the deadline
-- has passed, the whole statement fails (query_canceled) and nothing of it is written.
CREATE OR REPLACE FUNCTION asyncrelay_before_deadline(deadline timestamptz) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF deadline IS NOT NULL AND clock_timestamp() > deadline THEN
    RAISE EXCEPTION 'request deadline passed before the statement ran' USING ERRCODE = 'query_canceled';
  END IF;
  RETURN true;
END
$$;
