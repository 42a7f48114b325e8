import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Gauge } from "prom-client";
import type { Logger } from "../../../app/src/log.ts";
import type { Sql } from "../../../app/src/services/db.ts";
import { PRUNE_BATCH, startTurnRetention } from "../../../app/src/services/turn-retention.ts";

test("a sweep prunes batch after batch while they come back whole: a backlog goes in one sweep, not one batch a period", async () => {
  const batches = [PRUNE_BATCH, PRUNE_BATCH, 5];
  let statements = 0;
  const sql = async (parts: TemplateStringsArray) =>
    parts.join("").includes("turn_retention_sweeps")
      ? [{ at: 1 }]
      : [{ locked: true, turns_deleted: batches[statements++] ?? 0, sessions_deleted: 0, source_sets_deleted: 0 }];
  let sweepLogged: (line: { turns: number }) => void = () => {};
  const logged = new Promise<{ turns: number }>((resolve) => {
    sweepLogged = resolve;
  });
  const log = { info: (line: { turns: number }) => sweepLogged(line), warn: () => {} } as unknown as Logger;
  const lastSuccess = { set: () => {} } as unknown as Gauge;
  const retention = startTurnRetention(sql as unknown as Sql, { days: 1, everyMs: 10, log, lastSuccess });
  // Its timer is unref'd: this wait holds the process meanwhile, and gives up after 5 s.
  const giveUp = new AbortController();
  const noSweep = { turns: Number.NaN };
  try {
    const line = await Promise.race([logged, sleep(5_000, noSweep, { signal: giveUp.signal }).catch(() => noSweep)]);
    assert.equal(line.turns, 2 * PRUNE_BATCH + 5);
  } finally {
    giveUp.abort();
    retention.stop();
  }
});
