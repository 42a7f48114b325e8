-- A turn's question and answer as JSON strings, in bytes, taken when it is stored: a session page ends at a byte
-- budget (schemas.ts SESSION_PAGE_MAX_BYTES), and rendering both with to_json on every page read measured each of the
-- page's limit + 1 rows, those past the budget too: 501 turns of 5,000 control characters (six bytes each as JSON)
-- cost a page 251 ms of Postgres against 5 ms (probe CP). Turns stored before this migration, or by a replica of the
-- version before it during a rolling deploy, have none and are measured the slow way when read (store.ts
-- sessionTurns). Nullable: no rewrite of the table, no backfill under a lock.
ALTER TABLE turns ADD COLUMN json_bytes integer;

-- The one measure, for the turn writes (turns.ts) and for the pages reading turns stored without it.
CREATE FUNCTION turn_json_bytes(question text, answer text) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
RETURN octet_length(to_json(question)::text) + octet_length(to_json(answer)::text);
