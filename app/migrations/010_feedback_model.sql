-- The model that gave the rated answer, copied from its turn when the feedback is stored: the feedback summary
-- grouped feedback by joining every turn, and read the whole turns table (2.4 GB for 3M turns: 3 s a call, a 503 at
-- its 10 s bound with three callers, probe AF). Nullable, no backfill: feedback stored before this migration is
-- joined to its turn as before, until turn retention deletes it with its turn.
ALTER TABLE feedback ADD COLUMN model text;
