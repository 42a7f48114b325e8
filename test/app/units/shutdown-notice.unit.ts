// When start.ts's close gives the shutdown notice: early enough that a turn already sent to a Postgres that hangs is
// answered (at DB_QUERY_TIMEOUT_MS) before the drain cuts its connection.
import assert from "node:assert/strict";
import { test } from "node:test";
import { noticeLeadMs } from "../../../app/src/start.ts";

test("the shutdown notice leaves a statement's deadline and half a second before the cut, within half the period", () => {
  // The defaults: a 10 s period, 1 s statements. A lead of 1 s answered such a turn as the drain ended (probe CM).
  assert.equal(noticeLeadMs(10_000, 1_000), 1_500);
  assert.equal(noticeLeadMs(65_000, 5_000), 5_500);
  // Short statements keep the second the notice always gave.
  assert.equal(noticeLeadMs(10_000, 100), 1_000);
  // A short period: half of it, as before.
  assert.equal(noticeLeadMs(2_000, 1_000), 1_000);
});
