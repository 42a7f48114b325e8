-- A turn whose answer stopped at MAX_ANSWER_TOKENS says so, as its response did (`truncated`). A constant default:
-- no table rewrite (PostgreSQL 11+), so the migration is instant on a big table; earlier turns were not cut.
ALTER TABLE turns ADD COLUMN truncated boolean NOT NULL DEFAULT false;
