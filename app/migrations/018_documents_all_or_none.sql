-- An ingest records all of its documents or none (store.ts upsertDocuments). Another write that leases one of them
-- after the statement's snapshot makes its ON CONFLICT ... WHERE skip that row alone, and the rows before it in id
-- order were recorded: the ingest was answered 409, yet its other documents stayed recorded, new ones as documents no
-- request acknowledged (a DELETE of one answered 200) and stored ones with the refused title and metadata (the race
-- fuzz of wave 63: 7 of 140 refused ingests left 210 records). Called with fewer rows written than given, this raises
-- its own SQLSTATE, and the statement is undone whole.
CREATE FUNCTION refuse_partial_write(written bigint, given integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF written < given THEN
    RAISE EXCEPTION 'another write leased some of these documents during this statement' USING ERRCODE = 'AS409';
  END IF;
  RETURN true;
END
$$;
