-- The size of a source list as JSON text, taken when it is stored: a session page ends at a byte budget
-- (schemas.ts SESSION_PAGE_MAX_BYTES), and measuring each turn's list by rendering its jsonb as text on every page read
-- cost Postgres seconds on pages of long lists. Lists stored before this migration have none and are measured
-- the slow way when read (store.ts sessionTurns). Nullable: no rewrite of the table, no backfill under a lock.
ALTER TABLE source_sets ADD COLUMN bytes integer;
