-- Turns answered 503 or 504 whose statement committed after all are deleted again (turns.ts), and now with them the
-- sessions and source lists they leave without a turn, as turn retention deletes what its turns leave: a taken-back
-- turn of a new session, with sources no other turn had, left both behind for good, which retention never deletes
-- (it deletes only what the turns it deletes referred to; probe BJ).
--
-- What both leave unused is deleted by one function, `drop_unused`, taken out of 012's prune_turns, which calls it:
-- its locks and checks are 012's, in 012's order (lists, then sessions), each check a statement of its own.

CREATE OR REPLACE FUNCTION drop_unused(gone_sessions text[], gone_hashes text[],
  OUT sessions_deleted integer, OUT source_sets_deleted integer)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM 1 FROM source_sets WHERE hash = ANY(gone_hashes) ORDER BY hash FOR UPDATE;
  PERFORM 1 FROM sessions WHERE id = ANY(gone_sessions) ORDER BY id FOR UPDATE;
  DELETE FROM source_sets s WHERE s.hash = ANY(gone_hashes)
    AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.sources_hash = s.hash);
  GET DIAGNOSTICS source_sets_deleted = ROW_COUNT;
  DELETE FROM sessions s WHERE s.id = ANY(gone_sessions)
    AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id);
  GET DIAGNOSTICS sessions_deleted = ROW_COUNT;
END
$$;

CREATE OR REPLACE FUNCTION prune_turns(lock_key bigint, older_than_days integer, batch_size integer)
RETURNS TABLE (locked boolean, turns_deleted integer, sessions_deleted integer, source_sets_deleted integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  gone_sessions text[];
  gone_hashes text[];
BEGIN
  locked := pg_try_advisory_xact_lock(lock_key);
  turns_deleted := 0;
  sessions_deleted := 0;
  source_sets_deleted := 0;
  IF NOT locked THEN
    RETURN NEXT;
    RETURN;
  END IF;

  WITH gone AS (
    DELETE FROM turns WHERE id IN (
      SELECT id FROM (SELECT id, created_at FROM turns ORDER BY id LIMIT batch_size) oldest
      WHERE created_at < now() - make_interval(days => older_than_days))
    RETURNING session_id, sources_hash)
  SELECT count(*), array_agg(DISTINCT session_id), array_agg(DISTINCT sources_hash) FILTER (WHERE sources_hash IS NOT NULL)
  INTO turns_deleted, gone_sessions, gone_hashes FROM gone;
  IF turns_deleted > 0 THEN
    SELECT u.sessions_deleted, u.source_sets_deleted INTO sessions_deleted, source_sets_deleted
    FROM drop_unused(gone_sessions, gone_hashes) u;
  END IF;
  RETURN NEXT;
END
$$;

-- The turns of `request_ids` (a JSON array of strings), and what they leave unused; returns how many turns it deleted.
CREATE OR REPLACE FUNCTION take_back_turns(request_ids jsonb)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  gone_sessions text[];
  gone_hashes text[];
  turns_deleted integer;
BEGIN
  WITH gone AS (
    DELETE FROM turns WHERE request_id IN (SELECT jsonb_array_elements_text(request_ids))
    RETURNING session_id, sources_hash)
  SELECT count(*), array_agg(DISTINCT session_id), array_agg(DISTINCT sources_hash) FILTER (WHERE sources_hash IS NOT NULL)
  INTO turns_deleted, gone_sessions, gone_hashes FROM gone;
  IF turns_deleted > 0 THEN
    PERFORM drop_unused(gone_sessions, gone_hashes);
  END IF;
  RETURN turns_deleted;
END
$$;
