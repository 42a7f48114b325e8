-- A turn's sources stored once per distinct list instead of once per turn: every cache hit of an answer repeats the
-- same chunk texts (up to CONTEXT_TOKEN_BUDGET of them), which made each turn write and row that much heavier.
-- Keyed by the sha256 of the list's JSON. Rows are immutable and never deleted, so a writer that saw a hash committed
-- may leave its JSON out afterwards. Turns written before this migration keep `sources` inline.
CREATE TABLE source_sets (
  hash     text PRIMARY KEY,
  sources  jsonb NOT NULL
);
-- No foreign key: its check would take a shared lock on the same source_sets row in every turn insert.
ALTER TABLE turns ADD COLUMN sources_hash text;
