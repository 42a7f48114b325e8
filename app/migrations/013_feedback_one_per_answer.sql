-- One feedback per answer: a rating of an answer (its request_id) replaces the one stored before. Feedback was only
-- ever added, so a client that lost the answer to its post and sent it again, or sent it to two replicas, counted
-- twice in the summary, and a post its client gave up on stayed beside the one it sent again (probe BH: a post sent
-- twice made the summary's total 2; 60 of 60 abandoned posts stored). Now a retry leaves one.
--
-- In a function, as turn retention is (012): its answer's turn is locked first, so posts on one answer are recorded
-- one at a time, and the DELETE, a statement of its own in a VOLATILE function, takes a new snapshot that sees a post
-- committed while the lock was awaited (one statement's snapshot, taken before that commit, would keep both). A turn
-- deleted meanwhile (retention) is not found: NULL, a 404.
CREATE OR REPLACE FUNCTION record_feedback(
  rated_request_id text, rater text, rated_quality smallint, rated_correct boolean, rated_comment text)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  answer_model text;
  recorded bigint;
BEGIN
  SELECT t.model INTO answer_model FROM turns t JOIN sessions s ON s.id = t.session_id
  WHERE t.request_id = rated_request_id AND s.owner = rater
  FOR NO KEY UPDATE OF t;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  DELETE FROM feedback WHERE request_id = rated_request_id;
  INSERT INTO feedback (request_id, quality_score, is_correct, comment, created_by, model)
  VALUES (rated_request_id, rated_quality, rated_correct, rated_comment, rater, answer_model)
  RETURNING id INTO recorded;
  RETURN recorded;
END
$$;

-- Feedback stored before: the latest of each answer's is kept, as the summary now counts.
DELETE FROM feedback f WHERE EXISTS (SELECT 1 FROM feedback g WHERE g.request_id = f.request_id AND g.id > f.id);
