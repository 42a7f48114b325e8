-- A document whose chunks are being written to (or deleted from) Qdrant is leased to that request (`writer`) until
-- `writing_until`: another ingest or delete of it is refused (409) meanwhile, so two requests' Qdrant writes for one
-- document never interleave (a delete landing between a batch ingest's record and its chunks left chunks without a
-- record). A lease outlives a crashed writer only until `writing_until`. Nullable, no default: instant on a big table.
ALTER TABLE documents ADD COLUMN writer uuid, ADD COLUMN writing_until timestamptz;
