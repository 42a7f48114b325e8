-- Every replica looks for leases their writers left to expire (store.ts corpusVersion) at each corpus version
-- refresh: a partial index holds only the few documents being written, so that is no scan of the table. Built
-- without holding document writes, as 007.
CREATE INDEX CONCURRENTLY IF NOT EXISTS documents_writing_until_idx ON documents (writing_until) WHERE writing_until IS NOT NULL;
