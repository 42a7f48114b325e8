-- Turn retention (services/turn-retention.ts) deletes a source list once no turn refers to it (so 003's "never
-- deleted" no longer holds; source-sets.ts says how writers stay safe): this index answers that for each list a pruned
-- turn referred to, instead of a scan of every turn. Built without holding turn writes (a plain build held them:
-- 1.8 s for a million turns on a 2-core test machine, past the serving replicas' lock_timeout), so outside a
-- transaction and alone in this file (services/migrations.ts).
CREATE INDEX CONCURRENTLY IF NOT EXISTS turns_sources_hash_idx ON turns (sources_hash);
