-- When a turn retention sweep last finished on this database, whichever replica ran it. Every replica shows it as
-- turn_retention_last_success_timestamp_seconds (turn-retention.ts), which TurnRetentionStalled reads: each had stamped
-- its own start, so while every sweep failed, a replica started within the 6 h threshold (a deploy, the HPA, the
-- off-peak schedule) kept the alert silent (probe CJ). Dated at this migration: retention's clock starts here, so
-- sweeps already failing before it are alerted on 6 h after it, not at once.
CREATE TABLE turn_retention_sweeps (
  singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_finished timestamptz NOT NULL
);
INSERT INTO turn_retention_sweeps (last_finished) VALUES (now());
