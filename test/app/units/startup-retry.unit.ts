// Which errors a replica's start-up waits out (DB_STARTUP_WAIT_MS) and which end it at once (start.ts curedByWaiting).
import assert from "node:assert/strict";
import { test } from "node:test";
import { dependencyUnavailable } from "../../../app/src/errors.ts";
import { curedByWaiting } from "../../../app/src/start.ts";

test("start-up waits out a Postgres that is down, slow or busy, and exits at once on a refusal waiting cannot cure", () => {
  // A statement with no answer within DB_QUERY_TIMEOUT_MS (db.ts withDeadline): a replica started in a test met a
  // one-second stall on its first read of the corpus version and exited, where it should have tried again.
  assert.equal(curedByWaiting(dependencyUnavailable("postgres", "no answer within 1000 ms")), true);
  for (const code of ["ECONNREFUSED", "57P03", "55P03", "08006"]) assert.equal(curedByWaiting({ code }), true, code);
  // A wrong password, a missing database, a missing privilege.
  for (const code of ["28P01", "3D000", "42501"]) assert.equal(curedByWaiting({ code }), false, code);
  // Another upstream's outage is not Postgres'.
  assert.equal(curedByWaiting(dependencyUnavailable("qdrant", "no answer within 1000 ms")), false);
});
