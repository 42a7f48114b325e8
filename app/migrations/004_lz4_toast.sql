-- lz4 instead of the default pglz for the values a query's commit writes that can exceed the 2 kB TOAST threshold: a
-- source list (up to CONTEXT_TOKEN_BUDGET of chunk text) and a long answer. pglz spends its time even on text it then
-- stores uncompressed; with lz4 a turn carrying a new 5 x 1,150-character source list of low-redundancy text was
-- written in 0.66-0.78 ms p50 against 0.84-1.00 ms (sequential, one at a time). Values already stored keep their
-- method. lz4 needs PostgreSQL 14+ built --with-lz4: RDS for PostgreSQL 14+ is, and so are Debian's packages.
ALTER TABLE source_sets ALTER COLUMN sources SET COMPRESSION lz4;
ALTER TABLE turns ALTER COLUMN answer SET COMPRESSION lz4;
