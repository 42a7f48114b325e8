-- drop_unused (migration 014) locked every session and source list of the turns it deleted FOR UPDATE, those that
-- still had turns too. FOR UPDATE waits for every turn write whose foreign key check holds the session (KEY SHARE),
-- and group commit puts many sessions in one statement: a take-back in a busy session waited past its 1 s deadline,
-- rolled back and was tried again up to 10 s later, and a turn answered 503 stayed listed for p50 2-10 s, max 19 s
-- (probe CO: feedback posted on it meanwhile was acknowledged, then deleted with it).
--
-- Now every candidate is first locked FOR NO KEY UPDATE, which deleters take in turn and foreign key checks do not wait
-- for: two transactions deleting the last two turns of one session see each other's delete, as before, and a session
-- that keeps turns costs no wait. Only those left without a turn are then locked FOR UPDATE, which waits for turns
-- being written into them, and deleted if they still have none. Same order as before: lists, then sessions.

CREATE OR REPLACE FUNCTION drop_unused(gone_sessions text[], gone_hashes text[],
  OUT sessions_deleted integer, OUT source_sets_deleted integer)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM 1 FROM source_sets WHERE hash = ANY(gone_hashes) ORDER BY hash FOR NO KEY UPDATE;
  PERFORM 1 FROM sessions WHERE id = ANY(gone_sessions) ORDER BY id FOR NO KEY UPDATE;
  SELECT array_agg(h) INTO gone_hashes FROM unnest(gone_hashes) h
    WHERE NOT EXISTS (SELECT 1 FROM turns t WHERE t.sources_hash = h);
  SELECT array_agg(s) INTO gone_sessions FROM unnest(gone_sessions) s
    WHERE NOT EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s);
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
