-- One row: bumped by every ingest and delete. Cached answers are keyed by it, so invalidation is as durable as the
-- ingest itself (a Redis blip cannot lose it); replicas learn a new value through NOTIFY corpus_version.
CREATE TABLE corpus_version (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version    bigint NOT NULL
);
INSERT INTO corpus_version (version) VALUES (0);
