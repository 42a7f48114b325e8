-- Statistics for 010's column: added by ALTER TABLE, it had none, and counts as no change for autoanalyze, so the
-- planner guessed a few feedback rows without a model where every row stored before 010 has none, and the summary
-- probed turns once for each (7 s a call for 300k of them, 503s with three callers: probe AC2). Its own transaction:
-- ANALYZE does not hold feedback's writes, but 010's ALTER held them until its transaction ended.
ANALYZE feedback (model);
