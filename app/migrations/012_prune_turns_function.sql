-- Turn retention (turn-retention.ts) as one function, called in one statement: it ran as a transaction of several
-- statements through postgres.js' sql.begin(), and a connection reset in the middle of it ended the process.
-- postgres.js 3.4.9 then writes its own ROLLBACK on the closed connection from a setImmediate, which throws where no
-- caller can catch it (porsager/postgres#1208, open; fixes #1209 and #1215 unmerged): probe BA, a replica exiting 1
-- about 300 ms after a 300 ms cut. A statement cut off is an error its caller is given.
--
-- Deletes the turns older than `older_than_days` among the `batch_size` oldest by id (their feedback goes with them:
-- ON DELETE CASCADE), then the sessions and source lists they leave without a turn. Ids follow insertion, so once
-- pruned the oldest turns are the ones kept and this reads `batch_size` index entries, not the table: no index on
-- created_at to maintain on every insert. `lock_key`: one replica prunes at a time (another would wait on the same
-- rows); `locked` is false, and nothing looked at, when another holds it.
--
-- Sessions and lists are locked before they are checked, and each check is a statement of its own: a VOLATILE
-- function takes a new snapshot for each statement (PostgreSQL, "Function Volatility Categories"), so the checks see
-- what committed while the locks were waited for. A turn being written holds a lock on its session (its foreign key)
-- and on a source list it sent (turns.ts) until it commits: checked in the DELETE's own snapshot, taken before that
-- commit, the row looked unused, and deleting a session cascaded to the turn just acknowledged. Locked in the order a
-- turn's statement takes them, lists then sessions: PostgreSQL runs an unreferenced data-modifying CTE before the
-- foreign key checks (execMain.c standard_ExecutorFinish). A turn arriving after the lock fails its foreign key
-- (23503) once its session is gone, and the turn writer writes it again into a session created anew; a list it sends
-- is inserted again.
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
  IF turns_deleted = 0 THEN
    RETURN NEXT;
    RETURN;
  END IF;

  PERFORM 1 FROM source_sets WHERE hash = ANY(gone_hashes) ORDER BY hash FOR UPDATE;
  PERFORM 1 FROM sessions WHERE id = ANY(gone_sessions) ORDER BY id FOR UPDATE;
  DELETE FROM source_sets s WHERE s.hash = ANY(gone_hashes)
    AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.sources_hash = s.hash);
  GET DIAGNOSTICS source_sets_deleted = ROW_COUNT;
  DELETE FROM sessions s WHERE s.id = ANY(gone_sessions)
    AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id);
  GET DIAGNOSTICS sessions_deleted = ROW_COUNT;
  RETURN NEXT;
END
$$;
